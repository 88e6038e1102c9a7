#!/usr/bin/env python3
"""Cleans a realtor-data CSV the way the peer's train.py does and writes the exact training and
test rows for both implementations: `split_for_peer.py RAW.csv TRAIN.csv TEST.csv`.

Cleaning (as in ../shared/bench/peer/train.py): drop rows with a null price, bed, bath,
house_size or acre_lot; keep P1 <= price <= P99; then an 80/20 split with a fixed seed.
Needs pandas and scikit-learn (the peer's virtualenv has both)."""
import sys

import pandas as pd
from sklearn.model_selection import train_test_split

raw, train_out, test_out = sys.argv[1:4]
df = pd.read_csv(raw, dtype={"zip_code": str})
df = df.dropna(subset=["price", "bed", "bath", "house_size", "acre_lot"])
low, high = df["price"].quantile(0.01), df["price"].quantile(0.99)
df = df[(df["price"] >= low) & (df["price"] <= high)]
train, test = train_test_split(df, test_size=0.2, random_state=42)
train.to_csv(train_out, index=False)
test.to_csv(test_out, index=False)
print(f"train {len(train)} rows, test {len(test)} rows -> {train_out}, {test_out}")
