"""Data modules: datasets held as in-memory tensors, batched by index slicing, publishing a DataSpec."""
