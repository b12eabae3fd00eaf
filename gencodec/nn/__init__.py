"""Neural network building blocks: transforms, hyper transforms, shared layers."""
