"""A stand-in for torch with only what tests/workloads/gpu_job.py calls: stacks shaped like torch's."""
