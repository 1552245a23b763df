"""`python -m imujax.bench`: the training-step benchmark (`imujax.bench.steps`)."""

from absl import app

from imujax.bench import steps

if __name__ == "__main__":
  app.run(steps.main)
