"""The speed and memory suite: ``make bench`` runs gamm, train, score, predict and loader."""
