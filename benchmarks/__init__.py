"""Speed and memory benchmarks, run on demand (``python -m benchmarks NAME``).

They print figures and ratios measured in the same run; they never assert times.
"""
