/**
 * The Redis the benchmark uses. A module of its own, without ioredis: a contender's process must
 * not load ioredis unless the contender uses it (loading it slows nodemailer down, see
 * docs/benchmarks.md), and raw nodemailer's never does.
 */
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
