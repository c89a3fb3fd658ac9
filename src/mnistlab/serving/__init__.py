"""The serving stage: a trained run answers for a person's own digits.

Read `digits.py` first: `load_digit(path)` prepares a picture of any size,
colour or polarity the way MNIST's digits were made (`mnistlab predict`).
`server.py` serves the drawing page in `static/` and a JSON API
(`mnistlab serve`).
"""
