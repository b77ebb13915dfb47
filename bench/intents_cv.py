"""Cross-validation of the router's intent classifier on its own examples (no benchmark data).

Which features and which regularisation the classifier in ``taller/agent/intents.py`` uses is
chosen here, by 5-fold stratified cross-validation over ``taller/tools/examples.py``, so the
routing benchmark (``bench/routing.py`` on ``bench/data``) stays a judge nobody tuned against.

    .venv/bin/python bench/intents_cv.py            # every feature set x C
    .venv/bin/python bench/intents_cv.py --folds 10

Prints one line per configuration: the mean accuracy over the folds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FEATURE_SETS = ("char+word+emb", "char+emb", "char", "emb")
C_VALUES = (10.0, 30.0, 100.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    options = parser.parse_args()

    import numpy as np
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from taller.agent import intents, prompts
    from taller.embeddings import embed

    labels, texts = [], []
    for label, sentences in prompts.ROUTER_EXAMPLES.items():
        labels += [label] * len(sentences)
        texts += [intents.masked(sentence) for sentence in sentences]
    labels_array = np.array(labels)
    embeddings = embed(texts)

    def features(train, test, kind):
        parts_train, parts_test = [], []
        vectorizers = []
        if "char" in kind:
            vectorizers.append(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5),
                                               preprocessor=intents._folded, sublinear_tf=True))
        if "word" in kind:
            vectorizers.append(TfidfVectorizer(analyzer="word", ngram_range=(1, 2),
                                               preprocessor=intents._folded, sublinear_tf=True))
        for vectorizer in vectorizers:
            parts_train.append(vectorizer.fit_transform([texts[i] for i in train]))
            parts_test.append(vectorizer.transform([texts[i] for i in test]))
        if "emb" in kind:
            parts_train.append(csr_matrix(embeddings[train]))
            parts_test.append(csr_matrix(embeddings[test]))
        return hstack(parts_train).tocsr(), hstack(parts_test).tocsr()

    print(f"{len(texts)} examples, {len(prompts.ROUTER_EXAMPLES)} labels, {options.folds}-fold CV "
          f"(in use: char+word+emb, C={intents.REGULARIZATION_C:g})")
    folds = StratifiedKFold(options.folds, shuffle=True, random_state=0)
    for kind in FEATURE_SETS:
        for c in C_VALUES:
            scores = []
            for train, test in folds.split(texts, labels_array):
                train_x, test_x = features(train, test, kind)
                model = LogisticRegression(C=c, max_iter=5000).fit(train_x, labels_array[train])
                scores.append(float((model.predict(test_x) == labels_array[test]).mean()))
            print(f"{kind:15} C={c:<5g} accuracy {np.mean(scores):.3f} (folds {min(scores):.3f}-{max(scores):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
