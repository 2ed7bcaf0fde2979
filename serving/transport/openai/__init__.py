"""The OpenAI-compatible embeddings API over HTTP: routes and refusals on headers (api.py), JSON
requests, responses and errors (convert.py), and the uvicorn listener (http_server.py; the
`http` extra). Nothing here imports grpc."""
