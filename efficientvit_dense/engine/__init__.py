"""Running models with mmengine: configs and their checks, input data
checks, checkpoints (crash-safe writing, fit to the model), the
compatibility shims, training, testing and inference."""
