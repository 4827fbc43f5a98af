import { createMemoryLimiter } from '../../src/limiter/memory.js';
import { runLimiterContract } from './contract.js';

runLimiterContract('memory', async () => createMemoryLimiter(), async () => {});
