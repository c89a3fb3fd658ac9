"""The LR range test on tasks beyond MNIST (issue 29): regression, tabular, sequences, other images, fine-tuning."""
