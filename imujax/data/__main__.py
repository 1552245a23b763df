"""`python -m imujax.data`: see `imujax.data.info`."""

from absl import app

from imujax.data import info

if __name__ == "__main__":
  app.run(info.main)
