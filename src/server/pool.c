/* pool.c - the server's threads: the main (Python) thread, the secondary
 * threads, their work queues (one mutex + condvar each, intrusive FIFOs),
 * the hand-back of finished work items to the loop through the eventfd, and
 * qp_server_parallel.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "server_int.h"

static _Thread_local int this_thread = QP_EXEC_LOOP;

/* ====================================================================
 * Queues and threads
 * ==================================================================== */

void qp__workq_push(qp__workq *q, qp__work *j)
{
    j->next = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->tail) q->tail->next = j; else q->head = j;
    q->tail = j;
    q->len++;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* Pops a work item, waiting; NULL when the server stops. */
static qp__work *workq_pop(qp_server *s, qp__workq *q)
{
    pthread_mutex_lock(&q->mu);
    while (!q->head && !s->threads_stop) pthread_cond_wait(&q->cv, &q->mu);
    qp__work *j = q->head;
    if (j) {
        q->head = j->next;
        if (!q->head) q->tail = NULL;
        q->len--;
    }
    pthread_mutex_unlock(&q->mu);
    return j;
}

qp__work *qp__workq_take_all(qp__workq *q)
{
    pthread_mutex_lock(&q->mu);
    qp__work *j = q->head;
    q->head = q->tail = NULL;
    q->len = 0;
    pthread_mutex_unlock(&q->mu);
    return j;
}

void qp__work_free(qp__work *j)
{
    if (!j) return;
    qp_buf_unref(j->msg);
    qp_unref(j->args);
    qp_unref(j->result);
    free(j->out);
    if (j->cred) {
        OPENSSL_cleanse(j->cred, strlen(j->cred));
        free(j->cred);
    }
    free(j);
}

void qp__work_post(qp_server *s, qp__work *j, int exec)
{
    qp__workq_push(exec == QP_EXEC_MAIN ? &s->mainq : &s->pool, j);
}

/* A finished work item goes back to the loop; one eventfd write per batch. */
static void post_done(qp_server *s, qp__work *j)
{
    j->next = NULL;
    pthread_mutex_lock(&s->done.mu);
    bool was_empty = !s->done.head;
    if (s->done.tail) s->done.tail->next = j; else s->done.head = j;
    s->done.tail = j;
    pthread_mutex_unlock(&s->done.mu);
    if (was_empty) {
        uint64_t one = 1;
        ssize_t r = write(s->evfd, &one, sizeof one);
        (void)r;   /* the counter cannot overflow in practice */
    }
}

typedef struct thread_arg { qp_server *s; int index; } thread_arg;

static void *thread_main(void *p)
{
    thread_arg a = *(thread_arg *)p;
    free(p);
    qp_server *s = a.s;
    this_thread = a.index < 0 ? QP_EXEC_MAIN : QP_EXEC_POOL;
    /* Names show in top -H, gdb and /proc/PID/task/TID/comm, where tests
     * find which thread is which (15 characters at most). */
    char name[16];
    if (a.index < 0) snprintf(name, sizeof name, "qp-main");
    else if (a.index < s->opts.secondary)   /* & 0xffff: index <= 1024 fits */
        snprintf(name, sizeof name, "qp-sec-%d", a.index & 0xffff);
    else snprintf(name, sizeof name, "qp-helper");
    pthread_setname_np(pthread_self(), name);
    /* the internal helper of a -s 0 server is nobody's secondary thread */
    if (s->opts.on_thread_start && a.index < s->opts.secondary)
        s->opts.on_thread_start(a.index, s->opts.thread_data);
    pthread_mutex_lock(&s->done.mu);
    s->nready++;
    pthread_cond_broadcast(&s->ready_cv);
    pthread_mutex_unlock(&s->done.mu);
    qp__workq *q = a.index < 0 ? &s->mainq : &s->pool;
    qp__work *j;
    while ((j = workq_pop(s, q))) {
        if (j->kind == QP__WORK_TASK) {
            j->task(j->task_data);
            free(j);
            continue;
        }
        if (s->run(s, j, this_thread) == QP__WORK_DONE) post_done(s, j);
    }
    return NULL;
}

int qp__threads_start(qp_server *s, char *err, size_t errlen)
{
    /* The main thread, then the secondaries. With -s 0 one internal pool
     * thread still takes logins and big decodes/encodes, so they never wait
     * behind a long Python call on the main thread; user functions
     * registered for the pool run on main then, as server.h says. */
    int n = 1 + (s->opts.secondary > 0 ? s->opts.secondary : 1);
    if (!(s->threads = calloc((size_t)n, sizeof *s->threads))) return QP_ENOMEM;
    for (int i = 0; i < n; i++) {
        thread_arg *a = malloc(sizeof *a);
        if (!a) return QP_ENOMEM;
        a->s = s;
        a->index = i - 1;      /* -1: main, then 0..N-1 */
        int e = pthread_create(&s->threads[i], NULL, thread_main, a);
        if (e) {
            free(a);
            snprintf(err, errlen, "pthread_create: %s", strerror(e));
            return -e;
        }
        s->nthreads++;
    }
    /* Serve only once every thread is set up (pinned, Python started):
     * the first calls then find their threads ready. */
    pthread_mutex_lock(&s->done.mu);
    while (s->nready < n) pthread_cond_wait(&s->ready_cv, &s->done.mu);
    pthread_mutex_unlock(&s->done.mu);
    return 0;
}

void qp__threads_stop(qp_server *s)
{
    qp__workq *qs[] = { &s->pool, &s->mainq };
    for (int i = 0; i < 2; i++) {
        pthread_mutex_lock(&qs[i]->mu);
        s->threads_stop = true;
        pthread_cond_broadcast(&qs[i]->cv);
        pthread_mutex_unlock(&qs[i]->mu);
    }
    for (int i = 0; i < s->nthreads; i++) pthread_join(s->threads[i], NULL);
    s->nthreads = 0;
    free(s->threads);
    s->threads = NULL;
}

/* ---- qp_server_parallel ---- */
typedef struct par {
    atomic_int_fast64_t next;  /* next item to take */
    atomic_int_fast64_t done;  /* items finished */
    atomic_int refs;           /* caller + helpers not yet finished */
    int64_t n;
    void (*fn)(int64_t, void *);
    void *data;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} par;

static void par_unref(par *p)
{
    if (atomic_fetch_sub(&p->refs, 1) == 1) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        free(p);
    }
}

static void par_work(void *arg)
{
    par *p = arg;
    int64_t i;
    while ((i = atomic_fetch_add(&p->next, 1)) < p->n) {
        p->fn(i, p->data);
        if (atomic_fetch_add(&p->done, 1) + 1 == p->n) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_broadcast(&p->cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
    par_unref(p);
}

void qp_server_parallel(qp_server *s, int64_t n, void (*fn)(int64_t i, void *data), void *data)
{
    if (n <= 0) return;
    int helpers = s->nthreads > 1 ? s->opts.secondary : 0;
    if (helpers > n - 1) helpers = (int)(n - 1);
    par *p = calloc(1, sizeof *p);
    if (!p) helpers = -1;
    if (helpers < 0) {                        /* no memory: do it all here */
        for (int64_t i = 0; i < n; i++) fn(i, data);
        return;
    }
    p->n = n;
    p->fn = fn;
    p->data = data;
    atomic_init(&p->refs, 1);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (int h = 0; h < helpers; h++) {
        qp__work *j = calloc(1, sizeof *j);
        if (!j) break;
        j->kind = QP__WORK_TASK;
        j->task = par_work;
        j->task_data = p;
        atomic_fetch_add(&p->refs, 1);
        qp__workq_push(&s->pool, j);
    }
    atomic_fetch_add(&p->refs, 1);            /* par_work drops one */
    par_work(p);
    /* Items taken by helpers may still be running. */
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->done) < n) pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    par_unref(p);
}

int qp_server_secondary(const qp_server *s) { return s->opts.secondary; }
