"""`python run.py` = `docproc serve`: the service on its settings from the environment."""
import sys

from app.server import serve

if __name__ == "__main__":
    sys.exit(serve())
