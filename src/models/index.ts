/** The mixture-of-experts model: layouts, per-row evaluation, objective, gradients, predictions. */
export * from './layout.js';
export * from './row-model.js';
export * from './objective.js';
export * from './gradient.js';
export * from './predict.js';
