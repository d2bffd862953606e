"""`eegpi validate FILE...`: check pipeline files locally, without a daemon."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from eegpi.cli.output import print_json
from eegpi.exc import ConfigError

__all__ = ["cmd_validate"]


def cmd_validate(args: argparse.Namespace) -> int:
    from eegpi.pipeline.spec import load_pipeline_file

    results: list[dict[str, Any]] = []
    for path in args.files:
        try:
            spec = load_pipeline_file(path)
        except ConfigError as exc:
            results.append({"file": path, "ok": False, "error": str(exc)})
            continue
        results.append(
            {
                "file": path,
                "ok": True,
                "name": spec.name,
                "stages": len(spec.stages),
                "topics": list(spec.topics),
            }
        )
    if args.json:
        print_json(results)
    else:
        for r in results:
            if r["ok"]:
                topics = ", ".join(r["topics"]) or "none"
                print(f"{r['file']}: ok ({r['stages']} stages, topics: {topics})")
            else:
                # ConfigError messages already start with the file name.
                message = r["error"]
                if not message.startswith(r["file"]):
                    message = f"{r['file']}: {message}"
                print(message, file=sys.stderr)
    return 0 if all(r["ok"] for r in results) else 1
