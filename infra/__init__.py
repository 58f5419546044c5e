"""CAP Verifier on Kubernetes: one typed config, one model, several outputs."""
