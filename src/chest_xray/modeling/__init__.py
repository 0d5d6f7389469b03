"""The model stage (06_models): inputs as uint8 batches, augmentation, the VGG network, its
training loop. Keras 3 only (any backend); nothing here imports Kedro."""
