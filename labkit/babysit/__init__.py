"""Babysitting the learning process (the lectures' recipe): checks before training (checks.py), the LR range
test (lr_finder.py) and the coarse-to-fine search recipe (recipe.py). Diagnosing a run is labkit.diagnosis.

    from labkit.babysit.checks import run_checks
    print(run_checks(config).text())
"""
