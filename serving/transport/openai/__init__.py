"""The OpenAI-compatible embeddings API over HTTP: routes and admission (api.py), JSON requests,
responses and errors (convert.py), and the uvicorn listener (http_server.py; the `http` extra).
Nothing here imports grpc."""
