/* LD_PRELOAD helper for bench/session_memory.sh (not part of parleyd).
 * A thread polls for the file named by $PARLEY_STATS_TRIGGER; each time it
 * appears, it is removed and jemalloc's statistics are written as JSON to
 * $PARLEY_STATS_TRIGGER.N (N = 0, 1, ...). Needs parleyd linked with
 * jemalloc (the default build). */
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static FILE* out;

static void Write(void* opaque, const char* s) {
  (void)opaque;
  fputs(s, out);
}

static void* Poll(void* arg) {
  const char* trigger = arg;
  char path[4096];
  for (int n = 0;; usleep(50000)) {
    if (access(trigger, F_OK) != 0) continue;
    unlink(trigger);
    char tmp[4096 + 8];
    snprintf(path, sizeof path, "%s.%d", trigger, n++);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    out = fopen(tmp, "w");
    if (out == NULL) continue;
    malloc_stats_print(Write, NULL, "J");
    fclose(out);
    rename(tmp, path); /* the script sees the dump whole or not at all */
  }
  return NULL;
}

__attribute__((constructor)) static void Start(void) {
  const char* trigger = getenv("PARLEY_STATS_TRIGGER");
  if (trigger == NULL) return;
  pthread_t t;
  if (pthread_create(&t, NULL, Poll, (void*)trigger) == 0) pthread_detach(t);
}
