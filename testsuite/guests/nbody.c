/*
 * double-precision physics and signal processing in scalar SSE2 (built with
 * -fno-math-errno so that __builtin_sqrt is one sqrtsd; no libm):
 * - the five-body Jovian planets simulation (the benchmarks game's n-body):
 *   symplectic Euler steps, energy before and after, which must agree to 1e-4;
 * - a radix-2 decimation-in-time complex FFT of 1024 points, twiddle factors built
 *   by the recurrence w(k+1) = w(k) * w(1) from cos/sin of 2*pi/n computed by
 *   Taylor series; forward then inverse must give back the input to 1e-9, and
 *   Parseval's identity must hold;
 * - Newton's square root against sqrtsd, and double <-> int64 conversions.
 * Results print as IEEE-754 bit patterns. SCALE multiplies the steps and rounds.
 */
#include "rt.h"

#define PI 3.141592653589793
#define SOLAR_MASS (4 * PI * PI)
#define DAYS_PER_YEAR 365.24
#define NBODIES 5

struct body {
    double x, y, z, vx, vy, vz, mass;
};

static struct body bodies[NBODIES] = {
    /* sun */
    { 0, 0, 0, 0, 0, 0, SOLAR_MASS },
    /* jupiter */
    { 4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01,
      1.66007664274403694e-03 * DAYS_PER_YEAR, 7.69901118419740425e-03 * DAYS_PER_YEAR,
      -6.90460016972063023e-05 * DAYS_PER_YEAR, 9.54791938424326609e-04 * SOLAR_MASS },
    /* saturn */
    { 8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01,
      -2.76742510726862411e-03 * DAYS_PER_YEAR, 4.99852801234917238e-03 * DAYS_PER_YEAR,
      2.30417297573763929e-05 * DAYS_PER_YEAR, 2.85885980666130812e-04 * SOLAR_MASS },
    /* uranus */
    { 1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01,
      2.96460137564761618e-03 * DAYS_PER_YEAR, 2.37847173959480950e-03 * DAYS_PER_YEAR,
      -2.96589568540237556e-05 * DAYS_PER_YEAR, 4.36624404335156298e-05 * SOLAR_MASS },
    /* neptune */
    { 1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01,
      2.68067772490389322e-03 * DAYS_PER_YEAR, 1.62824170038242295e-03 * DAYS_PER_YEAR,
      -9.51592254519715870e-05 * DAYS_PER_YEAR, 5.15138902046611451e-05 * SOLAR_MASS },
};

static u64 dbits(double d)
{
    union {
        double d;
        u64 u;
    } v = { .d = d };
    return v.u;
}

static double dabs(double d)
{
    return d < 0 ? -d : d;
}

static void offset_momentum(void)
{
    double px = 0, py = 0, pz = 0;
    for (int i = 0; i < NBODIES; i++) {
        px += bodies[i].vx * bodies[i].mass;
        py += bodies[i].vy * bodies[i].mass;
        pz += bodies[i].vz * bodies[i].mass;
    }
    bodies[0].vx = -px / SOLAR_MASS;
    bodies[0].vy = -py / SOLAR_MASS;
    bodies[0].vz = -pz / SOLAR_MASS;
}

static double energy(void)
{
    double e = 0;
    for (int i = 0; i < NBODIES; i++) {
        struct body *b = &bodies[i];
        e += 0.5 * b->mass * (b->vx * b->vx + b->vy * b->vy + b->vz * b->vz);
        for (int j = i + 1; j < NBODIES; j++) {
            struct body *c = &bodies[j];
            double dx = b->x - c->x, dy = b->y - c->y, dz = b->z - c->z;
            e -= b->mass * c->mass / __builtin_sqrt(dx * dx + dy * dy + dz * dz);
        }
    }
    return e;
}

NOINLINE static void advance(double dt, int steps)
{
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < NBODIES; i++) {
            struct body *b = &bodies[i];
            for (int j = i + 1; j < NBODIES; j++) {
                struct body *c = &bodies[j];
                double dx = b->x - c->x, dy = b->y - c->y, dz = b->z - c->z;
                double d2 = dx * dx + dy * dy + dz * dz;
                double mag = dt / (d2 * __builtin_sqrt(d2));
                b->vx -= dx * c->mass * mag;
                b->vy -= dy * c->mass * mag;
                b->vz -= dz * c->mass * mag;
                c->vx += dx * b->mass * mag;
                c->vy += dy * b->mass * mag;
                c->vz += dz * b->mass * mag;
            }
        }
        for (int i = 0; i < NBODIES; i++) {
            struct body *b = &bodies[i];
            b->x += dt * b->vx;
            b->y += dt * b->vy;
            b->z += dt * b->vz;
        }
    }
}

/* ---- FFT ---- */

#define LOGN 10
#define FN (1 << LOGN)

static double re[FN], im[FN], re0[FN], im0[FN];
static double wre[FN / 2], wim[FN / 2];

/* cos and sin of a by their Taylor series (|a| small), to full double accuracy. */
static void cos_sin(double a, double *c, double *s)
{
    double term = 1, cs = 1, sn = 0;
    for (int k = 1; k < 30; k++) {
        term *= a / k;
        if (k % 4 == 1)
            sn += term;
        else if (k % 4 == 2)
            cs -= term;
        else if (k % 4 == 3)
            sn -= term;
        else
            cs += term;
    }
    *c = cs;
    *s = sn;
}

/* Twiddles w^k = exp(sign * 2*pi*i*k/FN) for k < FN/2, by complex multiplication. */
static void twiddles(double sign)
{
    double c, s;
    cos_sin(2 * PI / FN, &c, &s);
    s *= sign;
    double r = 1, i = 0;
    for (int k = 0; k < FN / 2; k++) {
        wre[k] = r;
        wim[k] = i;
        double nr = r * c - i * s;
        i = r * s + i * c;
        r = nr;
    }
}

static u32 reverse_bits(u32 v)
{
    u32 r = 0;
    for (int b = 0; b < LOGN; b++) {
        r = (r << 1) | (v & 1);
        v >>= 1;
    }
    return r;
}

NOINLINE static void fft(double sign)
{
    twiddles(sign);
    for (u32 i = 0; i < FN; i++) {
        u32 j = reverse_bits(i);
        if (j > i) {
            double t = re[i];
            re[i] = re[j];
            re[j] = t;
            t = im[i];
            im[i] = im[j];
            im[j] = t;
        }
    }
    for (int half = 1, step = FN / 2; half < FN; half *= 2, step /= 2) {
        for (int start = 0; start < FN; start += 2 * half) {
            for (int k = 0; k < half; k++) {
                double wr = wre[k * step], wi = wim[k * step];
                int a = start + k, b = a + half;
                double tr = re[b] * wr - im[b] * wi;
                double ti = re[b] * wi + im[b] * wr;
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
        }
    }
}

static u64 rng = 0x13198a2e03707344UL;

static u64 next(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717UL;
}

/* Newton's method for sqrt(v), v > 0, from a bit-trick first guess. */
static double newton_sqrt(double v)
{
    union {
        double d;
        u64 u;
    } g = { .d = v };
    g.u = (g.u >> 1) + 0x1ff8000000000000UL;
    double r = g.d;
    for (int k = 0; k < 6; k++)
        r = 0.5 * (r + v / r);
    return r;
}

int main(void)
{
    offset_momentum();
    double e0 = energy();
    advance(0.01, 20000 * SCALE);
    double e1 = energy();
    if (dabs(e1 - e0) > 1e-4)
        return fail("nbody", "energy drifted");
    print_str("nbody:");
    print_kv("e0", dbits(e0));
    print_kv("e1", dbits(e1));
    print_kv("jupiter_x", dbits(bodies[1].x));
    print_kv("neptune_vz", dbits(bodies[4].vz));
    print_nl();

    u64 acc = 0;
    double maxerr = 0, spectrum = 0;
    for (u32 round = 0; round < 4 * SCALE; round++) {
        double energy_t = 0;
        for (int i = 0; i < FN; i++) {
            re[i] = re0[i] = (double)(i64)(next() >> 11) * 0x1p-53 - 0.5;
            im[i] = im0[i] = (double)(i64)(next() >> 11) * 0x1p-53 - 0.5;
            energy_t += re[i] * re[i] + im[i] * im[i];
        }
        fft(-1);
        double energy_f = 0;
        for (int i = 0; i < FN; i++)
            energy_f += re[i] * re[i] + im[i] * im[i];
        if (dabs(energy_f / FN - energy_t) > 1e-9 * energy_t)
            return fail("nbody", "Parseval's identity does not hold");
        spectrum = re[FN / 3];
        acc = mix64(acc, checksum(re, sizeof(re)));
        acc = mix64(acc, checksum(im, sizeof(im)));
        fft(1);
        for (int i = 0; i < FN; i++) {
            double er = dabs(re[i] / FN - re0[i]), ei = dabs(im[i] / FN - im0[i]);
            maxerr = er > maxerr ? er : maxerr;
            maxerr = ei > maxerr ? ei : maxerr;
        }
        if (maxerr > 1e-9)
            return fail("nbody", "inverse FFT does not give back the input");
    }
    print_str("nbody:");
    print_kv("twiddle", dbits(wim[FN / 8]));
    print_kv("spectrum", dbits(spectrum));
    print_kv("maxerr", dbits(maxerr));
    print_kv("fft", acc);
    print_nl();

    u64 conv = 0;
    double worst = 0;
    for (u32 i = 1; i <= 20000 * SCALE; i++) {
        double v = (double)i * 1.7 + (double)(next() >> 12) * 0x1p-40;
        double a = newton_sqrt(v), b = __builtin_sqrt(v);
        double rel = dabs(a - b) / b;
        worst = rel > worst ? rel : worst;
        conv = mix64(conv, (u64)(i64)(b * 1e6));
        conv = mix64(conv, (u64)(i64)(-v * 3.5));
    }
    if (worst > 1e-15)
        return fail("nbody", "Newton and sqrtsd disagree");
    print_str("nbody:");
    print_kv("worst", dbits(worst));
    print_kv("conv", conv);
    print_nl();
    return 0;
}
