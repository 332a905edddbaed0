/* A slower disk for the journal benchmark: every fsync()/fdatasync() first
 * waits POSGW_FSYNC_DELAY_US microseconds, as a terminal's eMMC or SD card
 * takes milliseconds where this VM's disk takes a tenth of one. Loaded with
 * LD_PRELOAD into the benchmark's child process, so the raw commit loop, the
 * journal and persist-queue all pay the same delay in the same run. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void wait_like_a_slow_disk(void) {
    const char *text = getenv("POSGW_FSYNC_DELAY_US");
    long us = text ? atol(text) : 0;
    if (us > 0) {
        struct timespec t = {us / 1000000, (us % 1000000) * 1000};
        nanosleep(&t, NULL);
    }
}

int fsync(int fd) {
    static int (*real)(int);
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    wait_like_a_slow_disk();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    wait_like_a_slow_disk();
    return real(fd);
}
