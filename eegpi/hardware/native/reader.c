/*
 * eegpi's native acquisition reader: the per-frame loop of eegpi.hardware.acquisition in C.
 *
 * Why: the ADS1299 has no FIFO, so every frame must be read before the next DRDY (62.5 us at
 * 16000 SPS). The Python loop spends tens of microseconds of interpreter time per frame; on a
 * Pi 4 that is most of a period. Here a frame costs a poll(), a read() of the edge events, one
 * SPI transfer and a few stores into the shared-memory ring, with no interpreter involved.
 *
 * Loaded with ctypes; eegpi_reader_run() runs the whole loop in the calling thread (ctypes
 * releases the GIL for the call) until *stop becomes non-zero or the loop fails.
 *
 * The same contracts as the Python reader, ported line for line:
 *  - the ring (eegpi/hardware/ring.py): counters, slots, edge times and frames in one buffer;
 *    `written` published under the ring's lock, which the producer only ever *tries*; the
 *    consumer's wake-up posted once its `want` is met; a lossless producer sleeps on `space`;
 *  - the labels (eegpi/hardware/slots.py, KernelSlots): a frame's slot from the kernel's
 *    line_seqno and edge stamps, a frame an edge may have overtaken discarded and counted;
 *  - the loss counts (eegpi/hardware/acquisition.py): conversions lost before a frame are
 *    counted with it, so frames_read + missed == newest slot + 1.
 *
 * Transports: DRDY is always a file descriptor yielding struct gpio_v2_line_event records (the
 * kernel's line request, or the emulator's pipe). SPI is one SPI_IOC_MESSAGE(1) ioctl per frame
 * on a spidev descriptor, or a request/response on a SOCK_SEQPACKET socket to the emulator.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/spi/spidev.h>

#define EEGPI_READER_ABI 1
#ifndef EEGPI_READER_SOURCE
#define EEGPI_READER_SOURCE "unknown" /* build.py passes the SHA-256 of this file */
#endif

/* Ring layout: int64 counters[8], int64 seq[capacity], int64 edge_ns[capacity], frames. */
enum { WRITTEN, TAKEN, READ, MISSED, OVERFLOWED, WANT, BLOCKED, DONE, COUNTERS };

enum transport { SPI_IOCTL = 0, EMULATOR_SOCKET = 1 };

enum result {
    STOPPED = 0,
    STUCK = 1,        /* no DRDY for stuck_ns; detail = idle ns */
    DRDY_FAILED = 2,  /* poll/read of the DRDY descriptor failed; detail = errno */
    SPI_FAILED = 3,   /* the SPI transfer failed; detail = errno */
    LOCK_TIMEOUT = 4, /* the ring's lock was held for LOCK_TIMEOUT_S (a dead consumer) */
    LINK_CLOSED = 5,  /* the emulator's end of a descriptor closed */
};

#define MAX_EVENTS 1024     /* the kernel keeps at most 1024 events per line request */
#define MAX_FRAME 4096      /* spidev's default buffer */
#define LATE 0.75           /* slots.py _LATE */
#define DRIFT (1.0 / 64.0)  /* slots.py _DRIFT */
#define LOCK_TIMEOUT_S 2    /* ring.py _LOCK_TIMEOUT_S */
#define SPACE_WAIT_NS 100000000L
#define CPU_SAMPLE_EVERY 256

/* struct gpio_v2_line_event, as read() from a line request */
struct edge_event {
    uint64_t timestamp_ns;
    uint32_t id;
    uint32_t offset;
    uint32_t seqno;
    uint32_t line_seqno;
    uint32_t padding[6];
};
_Static_assert(sizeof(struct edge_event) == 48, "gpio_v2_line_event is 48 bytes");

/* What Python passes in (a ctypes.Structure with the same fields, in this order). */
struct reader_config {
    int64_t abi;
    uint8_t *ring;
    int64_t capacity;
    int64_t frame_len;
    sem_t *lock;
    sem_t *wake;
    sem_t *space;
    int32_t drdy_fd;
    int32_t spi_fd;
    int32_t transport;
    uint32_t speed_hz;
    double period_ns;
    int64_t stuck_ns;
    int32_t poll_ms;
    int32_t lossless;
    volatile int64_t *virtual_now; /* the emulator's virtual clock; NULL: CLOCK_MONOTONIC */
    volatile int32_t *stop;
};

/* What Python reads back, during and after the run. */
struct reader_stats {
    int64_t frames;    /* SPI frame reads */
    int64_t cpu_ns;    /* CPU time of the reading thread in this run (sampled) */
    int64_t loops;     /* wake-ups with events */
    int64_t detail;    /* see enum result */
    int64_t user_ns;   /* the user-space part of cpu_ns (the loop's own code, no system calls) */
};

struct slots {
    double period;
    int64_t slot;
    uint32_t seqno;
    double anchor;
};

struct placement {
    int kept;
    int64_t slot;
    int64_t lost;
    int64_t edge_ns;
    int n_carry;
};

struct reader {
    const struct reader_config *cfg;
    struct reader_stats *stats;
    volatile int64_t *counters;
    int64_t *seqs;
    int64_t *edges;
    uint8_t *frames;
    int64_t written;
    int64_t taken_seen;
    struct slots slots;
    struct edge_event seen[MAX_EVENTS];
    struct edge_event late[MAX_EVENTS];
    struct edge_event carry[MAX_EVENTS];
    uint8_t tx[MAX_FRAME + 5];
    uint8_t rx[MAX_FRAME];
};

int eegpi_reader_abi(void) { return EEGPI_READER_ABI; }

int eegpi_reader_max_events(void) { return MAX_EVENTS; }

const char *eegpi_reader_source(void) { return EEGPI_READER_SOURCE; }

/* --- clocks ---------------------------------------------------------------------------- */

static int64_t now_ns(const struct reader *r) {
    if (r->cfg->virtual_now)
        return __atomic_load_n(r->cfg->virtual_now, __ATOMIC_ACQUIRE);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t thread_user_ns(void) {
    struct rusage usage;
    if (getrusage(RUSAGE_THREAD, &usage))
        return 0;
    return (int64_t)usage.ru_utime.tv_sec * 1000000000 + (int64_t)usage.ru_utime.tv_usec * 1000;
}

static int stopping(const struct reader *r) {
    return __atomic_load_n(r->cfg->stop, __ATOMIC_ACQUIRE) != 0;
}

/* --- counters (statistics: only this producer writes them; relaxed stores) -------------- */

static void add_counter(struct reader *r, int which, int64_t n) {
    int64_t v = __atomic_load_n(&r->counters[which], __ATOMIC_RELAXED);
    __atomic_store_n(&r->counters[which], v + n, __ATOMIC_RELAXED);
}

/* --- the ring's lock: try only, except where ring.py waits with a timeout ---------------- */

static int try_lock(struct reader *r) {
    return sem_trywait(r->cfg->lock) == 0;
}

static int lock_with_timeout(struct reader *r) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += LOCK_TIMEOUT_S;
    while (sem_timedwait(r->cfg->lock, &deadline) != 0) {
        if (errno != EINTR)
            return 0;
    }
    return 1;
}

static void unlock(struct reader *r) { sem_post(r->cfg->lock); }

/* ring.py FrameRing._publish */
static void publish(struct reader *r, int64_t written) {
    if (!try_lock(r))
        return;
    volatile int64_t *c = r->counters;
    c[WRITTEN] = written;
    int64_t taken = c[TAKEN];
    int64_t want = c[WANT];
    int fire = want > 0 && written - taken >= want;
    if (fire)
        c[WANT] = 0;
    unlock(r);
    r->taken_seen = taken;
    if (fire)
        sem_post(r->cfg->wake);
}

/* ring.py FrameRing._wait_for_space; 1 when there is room, 0 when stopping, -1 on a dead lock */
static int wait_for_space(struct reader *r) {
    while (!stopping(r)) {
        if (!lock_with_timeout(r))
            return -1;
        int64_t taken = r->counters[TAKEN];
        if (r->written - taken < r->cfg->capacity) {
            r->taken_seen = taken;
            unlock(r);
            return 1;
        }
        r->counters[BLOCKED] = 1;
        while (sem_trywait(r->cfg->space) == 0) {
        }
        unlock(r);
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_nsec += SPACE_WAIT_NS;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec += 1;
            deadline.tv_nsec -= 1000000000;
        }
        sem_timedwait(r->cfg->space, &deadline);
    }
    return 0;
}

/* ring.py FrameRing.put; returns -1 only when the lock is dead */
static int put(struct reader *r, const uint8_t *frame, int64_t slot, int64_t edge_ns) {
    int64_t cap = r->cfg->capacity;
    add_counter(r, READ, 1);
    if (r->written - r->taken_seen >= cap) {
        publish(r, r->written);
        if (r->written - r->taken_seen >= cap) {
            if (!r->cfg->lossless) {
                add_counter(r, OVERFLOWED, 1);
                return 0;
            }
            int room = wait_for_space(r);
            if (room <= 0)
                return room;
        }
    }
    int64_t i = r->written % cap;
    int64_t flen = r->cfg->frame_len;
    memcpy(r->frames + i * flen, frame, (size_t)flen);
    r->seqs[i] = slot;
    r->edges[i] = edge_ns;
    r->written += 1;
    publish(r, r->written);
    return 1;
}

/* ring.py FrameRing.finish */
static int finish(struct reader *r) {
    int locked = lock_with_timeout(r);
    r->counters[WRITTEN] = r->written;
    r->counters[DONE] = 1;
    if (locked)
        unlock(r);
    sem_post(r->cfg->wake);
    return locked;
}

/* --- labels: slots.py KernelSlots -------------------------------------------------------- */

static int64_t slots_step(struct slots *s, const struct edge_event *e) {
    double t = (double)(int64_t)e->timestamp_ns;
    /* line_seqno is a u32: the signed 32-bit difference survives its wrap (74 h at 16 kSPS) */
    int64_t by_seqno = (int32_t)(e->line_seqno - s->seqno);
    int64_t by_time = (int64_t)floor((t - s->anchor) / s->period + (1 - LATE));
    int64_t step = by_seqno;
    if (by_time > step)
        step = by_time;
    if (step < 1)
        step = 1;
    double grid = s->anchor + (double)step * s->period;
    if (t < grid)
        s->anchor = t;
    else
        s->anchor = grid + fmin(t - grid, DRIFT * s->period);
    s->seqno = e->line_seqno;
    return step;
}

/* KernelSlots.place: the frame read between `began` and `ended`; the edges read after it that
 * fell after `began` are left in r->carry. */
static struct placement place(struct reader *r, int n_seen, int n_late, int64_t began,
                              int64_t ended) {
    struct slots *s = &r->slots;
    if (s->slot < 0) { /* slot 0 is the first edge seen, whether or not its frame is read */
        const struct edge_event *first = &r->seen[0];
        s->slot = -1;
        s->seqno = first->line_seqno - 1;
        s->anchor = (double)(int64_t)first->timestamp_ns - s->period;
    }
    int n_older = 0;
    const struct edge_event *label = &r->seen[n_seen - 1];
    for (int k = 0; k < n_late; k++) {
        if ((int64_t)r->late[k].timestamp_ns <= began) {
            label = &r->late[k];
            n_older++;
        }
    }
    struct placement p = {0};
    p.edge_ns = (int64_t)label->timestamp_ns;
    int64_t step = slots_step(s, label);
    s->slot += step;
    p.lost = step - 1;
    p.n_carry = n_late - n_older;
    memmove(r->carry, r->late + n_older, sizeof(struct edge_event) * (size_t)p.n_carry);
    for (int k = 0; k < p.n_carry; k++) {
        if ((int64_t)r->carry[k].timestamp_ns <= ended) {
            p.lost += 1; /* an edge fell during the read: the frame cannot be named */
            return p;
        }
    }
    p.kept = 1;
    p.slot = s->slot;
    return p;
}

/* --- transports -------------------------------------------------------------------------- */

static int full_read(int fd, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, (uint8_t *)buf + got, n - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        if (k == 0) {
            errno = EPIPE;
            return -1;
        }
        got += (size_t)k;
    }
    return 0;
}

/* Every waiting edge event (up to MAX_EVENTS) into `out`; -1 on failure, errno set. */
static int read_events(struct reader *r, struct edge_event *out) {
    ssize_t n;
    do {
        n = read(r->cfg->drdy_fd, out, sizeof(struct edge_event) * MAX_EVENTS);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    if (n == 0) {
        errno = EPIPE;
        return -1;
    }
    size_t part = (size_t)n % sizeof(struct edge_event);
    if (part) { /* a pipe may split a record; the kernel never does */
        if (full_read(r->cfg->drdy_fd, (uint8_t *)out + n, sizeof(struct edge_event) - part))
            return -1;
        n += (ssize_t)(sizeof(struct edge_event) - part);
    }
    return (int)((size_t)n / sizeof(struct edge_event));
}

static int events_waiting(struct reader *r, int timeout_ms) {
    struct pollfd p = {.fd = r->cfg->drdy_fd, .events = POLLIN};
    int n;
    do {
        n = poll(&p, 1, timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n > 0 && !(p.revents & POLLIN)) {
        errno = EPIPE; /* POLLHUP/POLLERR without data: the line request is gone */
        return -1;
    }
    return n;
}

/* One request/response with the emulator; `reply_len` bytes come back into r->rx. */
static int emulator_call(struct reader *r, size_t len, size_t reply_len) {
    ssize_t k;
    do {
        k = send(r->cfg->spi_fd, r->tx, len, 0);
    } while (k < 0 && errno == EINTR);
    if (k < 0)
        return -1;
    do {
        k = recv(r->cfg->spi_fd, r->rx, sizeof r->rx, 0);
    } while (k < 0 && errno == EINTR);
    if (k < 0)
        return -1;
    if ((size_t)k != reply_len) {
        errno = EPIPE;
        return -1;
    }
    return 0;
}

/* DRDY's wait: on the emulator's virtual clock, time only moves when the reader waits, so the
 * reader first asks the emulator to move it to the next edge (or by the timeout). */
static int wait_for_edges(struct reader *r, int timeout_ms) {
    int ready = events_waiting(r, 0);
    if (ready != 0)
        return ready;
    if (r->cfg->virtual_now) {
        int64_t timeout_ns = (int64_t)timeout_ms * 1000000;
        r->tx[0] = 'W';
        memcpy(r->tx + 1, &timeout_ns, sizeof timeout_ns);
        if (emulator_call(r, 1 + sizeof timeout_ns, 1))
            return -2;
    }
    return events_waiting(r, timeout_ms);
}

/* One frame into r->rx (zeros out, so no stray opcode reaches the chip). */
static int read_frame(struct reader *r) {
    size_t flen = (size_t)r->cfg->frame_len;
    if (r->cfg->transport == SPI_IOCTL) {
        struct spi_ioc_transfer xfer;
        memset(&xfer, 0, sizeof xfer);
        xfer.tx_buf = (uint64_t)(uintptr_t)r->tx;
        xfer.rx_buf = (uint64_t)(uintptr_t)r->rx;
        xfer.len = (uint32_t)flen;
        xfer.speed_hz = r->cfg->speed_hz;
        xfer.bits_per_word = 8;
        int n;
        do {
            n = ioctl(r->cfg->spi_fd, SPI_IOC_MESSAGE(1), &xfer);
        } while (n < 0 && errno == EINTR);
        return n < 0 ? -1 : 0;
    }
    r->tx[0] = 'T';
    memcpy(r->tx + 1, &r->cfg->speed_hz, sizeof r->cfg->speed_hz);
    memset(r->tx + 5, 0, flen);
    return emulator_call(r, 5 + flen, flen);
}

/* --- the loop: acquisition.py Acquisition._loop ------------------------------------------- */

static int fail(struct reader *r, int result, int64_t detail) {
    r->stats->detail = detail;
    return result;
}

static int loop(struct reader *r) {
    const struct reader_config *cfg = r->cfg;
    int64_t progress = now_ns(r);
    int64_t lost = 0;
    int n_carry = 0;
    int64_t cpu0 = thread_cpu_ns();
    int64_t user0 = thread_user_ns();
    while (!stopping(r)) {
        int n_seen;
        if (n_carry) {
            memcpy(r->seen, r->carry, sizeof(struct edge_event) * (size_t)n_carry);
            n_seen = n_carry;
            n_carry = 0;
        } else {
            int ready = wait_for_edges(r, cfg->poll_ms);
            if (ready == -2)
                return fail(r, errno == EPIPE ? LINK_CLOSED : SPI_FAILED, errno);
            if (ready < 0)
                return fail(r, errno == EPIPE ? LINK_CLOSED : DRDY_FAILED, errno);
            if (ready == 0) {
                int64_t idle = now_ns(r) - progress;
                if (idle > cfg->stuck_ns)
                    return fail(r, STUCK, idle);
                continue;
            }
            n_seen = read_events(r, r->seen);
            if (n_seen < 0)
                return fail(r, errno == EPIPE ? LINK_CLOSED : DRDY_FAILED, errno);
            if (n_seen == 0)
                continue;
        }
        /* The clock before and after the read bound when the transfer began (slots.py). */
        int64_t began = now_ns(r);
        if (read_frame(r))
            return fail(r, errno == EPIPE ? LINK_CLOSED : SPI_FAILED, errno);
        int64_t ended = now_ns(r);
        r->stats->frames += 1;
        int n_late = 0;
        int ready = events_waiting(r, 0);
        if (ready < 0)
            return fail(r, errno == EPIPE ? LINK_CLOSED : DRDY_FAILED, errno);
        if (ready > 0) {
            n_late = read_events(r, r->late);
            if (n_late < 0)
                return fail(r, errno == EPIPE ? LINK_CLOSED : DRDY_FAILED, errno);
        }
        struct placement where = place(r, n_seen, n_late, began, ended);
        n_carry = where.n_carry;
        lost += where.lost;
        progress = ended;
        if (where.kept) {
            if (lost) { /* counted with the frame after them: every slot up to it is accounted */
                add_counter(r, MISSED, lost);
                lost = 0;
            }
            if (put(r, r->rx, where.slot, where.edge_ns) < 0)
                return fail(r, LOCK_TIMEOUT, 0);
        }
        if (r->stats->frames % CPU_SAMPLE_EVERY == 0) {
            r->stats->cpu_ns = thread_cpu_ns() - cpu0;
            r->stats->user_ns = thread_user_ns() - user0;
        }
        r->stats->loops += 1;
    }
    r->stats->cpu_ns = thread_cpu_ns() - cpu0;
    r->stats->user_ns = thread_user_ns() - user0;
    return STOPPED;
}

/* Run until *cfg->stop is set (returns STOPPED) or the loop fails (another enum result, with
 * stats->detail). The ring is always finished: `written` published, `done` set, the consumer
 * woken. */
int eegpi_reader_run(const struct reader_config *cfg, struct reader_stats *stats) {
    if (cfg->abi != EEGPI_READER_ABI || cfg->frame_len < 1 || cfg->frame_len > MAX_FRAME ||
        cfg->capacity < 1)
        return -1;
    struct reader *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    r->cfg = cfg;
    r->stats = stats;
    r->counters = (volatile int64_t *)cfg->ring;
    r->seqs = (int64_t *)(cfg->ring + 8 * COUNTERS);
    r->edges = r->seqs + cfg->capacity;
    r->frames = (uint8_t *)(r->edges + cfg->capacity);
    r->written = r->counters[WRITTEN];
    r->taken_seen = r->counters[TAKEN];
    r->slots.period = cfg->period_ns;
    r->slots.slot = -1;
    int result = loop(r);
    if (!finish(r) && result == STOPPED)
        result = LOCK_TIMEOUT;
    free(r);
    return result;
}
