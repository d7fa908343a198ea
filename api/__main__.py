"""`python -m api`: serve the API with Settings' connection limits (api/server.py)."""
from api.server import main

main()
