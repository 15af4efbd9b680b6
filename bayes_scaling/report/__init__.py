"""report layer of bayes_scaling (see ARCHITECTURE.md)."""
