"""The benchmark: named evaluation tasks, validation/test goal splits, and the audit of a
dataset against them (how many evaluation (start, goal) pairs one training episode shows)."""
