/*
 * The C kernel of Lion for CPU tensors: one function per dtype, lion_f32, lion_f64 and lion_bf16, each updating a
 * whole list of (param, grad, exp_avg) tensors in one OpenMP parallel region.
 *
 * The update rule and its rounding, NaN and caution semantics are stated once, in reference.py (the single-tensor
 * kernel this file must reproduce bit for bit); cpu_kernel.py describes how each step maps onto the code below and
 * checks the built library against the reference before using it. cpu_build.py compiles this file (its hash is part
 * of the cache key) with -ffp-contract=off, so that the only fused multiply-adds are the explicit fma calls of the
 * lerp, as in ATen's vectorised CPU kernels.
 *
 * Arguments of lion_<dtype>: nt tensors; P, G, M arrays of nt data pointers (contiguous, or dense in one layout shared
 * by the three tensors of a triple); N their element counts (>= 1); lr in float64; decay = 1 - lr * weight_decay;
 * w1 = 1 - beta1; w2 = 1 - beta2; step_plain = lr rounded to the dtype; caution, maximize as 0/1; nthreads OpenMP
 * threads; tensors of at least big elements are split between the threads, smaller ones go to one thread whole.
 */

#include <stdint.h>
#include <string.h>
#include <math.h>
#include <omp.h>

#define LION_PROTOTYPE(NAME, S)                                                                                \
    void lion_##NAME(int64_t nt, S** P, S** G, S** M, const int64_t* N, double lr, double decay, double w1,      \
                     double w2, double step_plain, int caution, int maximize, int nthreads, int64_t big);
LION_PROTOTYPE(f32, float)
LION_PROTOTYPE(f64, double)
LION_PROTOTYPE(bf16, uint16_t)

#define INLINE static inline __attribute__((always_inline))

INLINE float bf16_load(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
INLINE uint16_t bf16_store(float f) {
    /* round to nearest even, NaN to the canonical quiet NaN (c10::BFloat16's conversion); branch-free to vectorize */
    uint32_t u; memcpy(&u, &f, 4);
    uint16_t rounded = (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    uint16_t nan_mask = (uint16_t)-(int16_t)(f != f);
    return (uint16_t)((rounded & (uint16_t)~nan_mask) | (0x7FC0 & nan_mask));
}

#define ID(x) (x)

/* One call of NAME##_body per combination of its four flags, each a constant the compiler specialises on. */
#define LION_CASE(NAME, K)                                                                                     \
    case K: NAME##_body(nt, P, G, M, N, lr, dec, w1o, w2o, st, nthreads, big,                                  \
                        (K >> 3) & 1, (K >> 2) & 1, (K >> 1) & 1, K & 1); break;
#define LION_CASES(NAME)                                                                                       \
    LION_CASE(NAME, 0) LION_CASE(NAME, 1) LION_CASE(NAME, 2) LION_CASE(NAME, 3)                                \
    LION_CASE(NAME, 4) LION_CASE(NAME, 5) LION_CASE(NAME, 6) LION_CASE(NAME, 7)                                \
    LION_CASE(NAME, 8) LION_CASE(NAME, 9) LION_CASE(NAME, 10) LION_CASE(NAME, 11)                              \
    LION_CASE(NAME, 12) LION_CASE(NAME, 13) LION_CASE(NAME, 14) LION_CASE(NAME, 15)

#define DEFINE_LION(NAME, S, OT, LOAD, STORE, FMA, FABS)                                                          \
INLINE OT NAME##_round(OT v) { return LOAD(STORE(v)); }                                                       \
INLINE OT NAME##_lerp(OT a, OT b, OT w, OT wm, const int small) {                                             \
    OT diff = b - a;                                                                                           \
    return small ? FMA(w, diff, a) : FMA(-diff, wm, b);                                                        \
}                                                                                                              \
INLINE OT NAME##_step(double x) { return NAME##_round((OT)x); }                                               \
INLINE void NAME##_update(S* restrict p, const S* restrict g, S* restrict m, int64_t lo, int64_t hi, OT decay,  \
                          OT w1, OT w1m, OT w2, OT w2m, OT step, const int caution, const int maximize,          \
                          const int s1, const int s2) {                                                        \
    for (int64_t i = lo; i < hi; ++i) {                                                                        \
        OT gv = maximize ? -LOAD(g[i]) : LOAD(g[i]);                                                           \
        OT mv = LOAD(m[i]);                                                                                    \
        OT d = NAME##_round(NAME##_lerp(mv, gv, w1, w1m, s1));                                                 \
        OT u = (OT)(d > 0) - (OT)(d < 0);                                                                      \
        if (caution) { OT a = (u * gv > 0) ? (OT)1 : (OT)0; u = u * a; }                                      \
        OT pd = NAME##_round(LOAD(p[i]) * decay);                                                              \
        p[i] = STORE(pd - u * step);                                                                           \
        m[i] = STORE(NAME##_lerp(mv, gv, w2, w2m, s2));                                                        \
    }                                                                                                          \
}                                                                                                              \
INLINE int64_t NAME##_count(const S* restrict g, const S* restrict m, int64_t lo, int64_t hi, OT w1, OT w1m,    \
                            const int maximize, const int s1) {                                                \
    int64_t total = 0;                                                                                         \
    for (int64_t b = lo; b < hi; b += (1 << 20)) {                                                             \
        int64_t e = b + (1 << 20) < hi ? b + (1 << 20) : hi;                                                   \
        int32_t c = 0;                                                                                         \
        for (int64_t i = b; i < e; ++i) {                                                                      \
            OT gv = maximize ? -LOAD(g[i]) : LOAD(g[i]);                                                       \
            OT d = NAME##_round(NAME##_lerp(LOAD(m[i]), gv, w1, w1m, s1));                                     \
            c += ((d > 0) & (gv > 0)) | ((d < 0) & (gv < 0));                                                  \
        }                                                                                                      \
        total += c;                                                                                            \
    }                                                                                                          \
    return total;                                                                                              \
}                                                                                                              \
INLINE OT NAME##_caution_step(double lr, int64_t count, int64_t n) {                                          \
    double mean = (double)count / (double)(n > 0 ? n : 1);                                                     \
    if (mean < 1e-3) mean = 1e-3;                                                                              \
    return NAME##_step(lr / mean);                                                                             \
}                                                                                                              \
INLINE void NAME##_body(int64_t nt, S** P, S** G, S** M, const int64_t* N, double lr, OT decay, OT w1, OT w2,   \
                        OT step_plain, int nthreads, int64_t big, const int caution,            \
                        const int maximize, const int s1, const int s2) {                                       \
    OT w1m = (OT)1 - w1, w2m = (OT)1 - w2;                                                                     \
    _Pragma("omp parallel for schedule(dynamic, 1) num_threads(nthreads)")                                     \
    for (int64_t t = 0; t < nt; ++t) {                                                                         \
        int64_t n = N[t];                                                                                      \
        if (n >= big) continue;                                                                                \
        OT step = step_plain;                                                                                  \
        if (caution) step = NAME##_caution_step(lr, NAME##_count(G[t], M[t], 0, n, w1, w1m, maximize, s1), n); \
        NAME##_update(P[t], G[t], M[t], 0, n, decay, w1, w1m, w2, w2m, step, caution, maximize, s1, s2);       \
    }                                                                                                          \
    for (int64_t t = 0; t < nt; ++t) {                                                                         \
        int64_t n = N[t];                                                                                      \
        if (n < big) continue;                                                                                 \
        S* p = P[t]; const S* g = G[t]; S* m = M[t];                                                           \
        OT step = step_plain;                                                                                  \
        if (caution) {                                                                                         \
            int64_t cnt = 0;                                                                                   \
            _Pragma("omp parallel num_threads(nthreads) reduction(+:cnt)")                                     \
            {                                                                                                  \
                int nth = omp_get_num_threads(), id = omp_get_thread_num();                                    \
                cnt += NAME##_count(g, m, n * id / nth, n * (id + 1) / nth, w1, w1m, maximize, s1);            \
            }                                                                                                  \
            step = NAME##_caution_step(lr, cnt, n);                                                            \
        }                                                                                                      \
        _Pragma("omp parallel num_threads(nthreads)")                                                          \
        {                                                                                                      \
            int nth = omp_get_num_threads(), id = omp_get_thread_num();                                        \
            int64_t lo = n * id / nth, hi = n * (id + 1) / nth;                                                \
            NAME##_update(p, g, m, lo, hi, decay, w1, w1m, w2, w2m, step, caution, maximize, s1, s2);          \
        }                                                                                                      \
    }                                                                                                          \
}                                                                                                              \
void lion_##NAME(int64_t nt, S** P, S** G, S** M, const int64_t* N, double lr, double decay, double w1,          \
                 double w2, double step_plain, int caution, int maximize, int nthreads, int64_t big) {         \
    OT w1o = (OT)w1, w2o = (OT)w2;                                                                             \
    int s1 = FABS(w1o) < (OT)0.5, s2 = FABS(w2o) < (OT)0.5;                                                    \
    OT dec = (OT)decay, st = (OT)step_plain;                                                                   \
    switch (caution * 8 + maximize * 4 + s1 * 2 + s2) {                                                        \
        LION_CASES(NAME)                                                                                       \
    }                                                                                                          \
}

DEFINE_LION(f32, float, float, ID, ID, fmaf, fabsf)
DEFINE_LION(f64, double, double, ID, ID, fma, fabs)
DEFINE_LION(bf16, uint16_t, float, bf16_load, bf16_store, fmaf, fabsf)
