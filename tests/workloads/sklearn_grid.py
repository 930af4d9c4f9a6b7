"""A scikit-learn grid search with 2 joblib (loky) worker processes: GridSearchCV(SVC, n_jobs=2).

    python sklearn_grid.py [--truth FILE]

Its workers import scikit-learn while unpickling their first task, then fit
SVCs; the main process waits on them, then refits the best model. With
--truth, writes {"search": [start, end], "refit_s": seconds} as JSON.
"""

import json
import sys
import time

from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC


def load_data():
    return make_classification(n_samples=1500, n_features=20, n_informative=8, random_state=0)


def search(x, y):
    grid = GridSearchCV(SVC(), {"C": [0.5, 1, 2, 4], "gamma": ["scale", 0.01]}, cv=3, n_jobs=2)
    return grid.fit(x, y)


def main():
    x, y = load_data()
    start = time.time()
    grid = search(x, y)
    truth = {"search": [start, time.time()], "best": grid.best_params_["C"]}
    return truth


if __name__ == "__main__":
    truth = main()
    if "--truth" in sys.argv:
        with open(sys.argv[sys.argv.index("--truth") + 1], "w") as f:
            json.dump(truth, f)
