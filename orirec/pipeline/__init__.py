"""End-to-end runs (DESIGN §3, layer 5): the stages and their chaining."""
