"""Small FastAPI apps showing the pacer package: uvicorn --app-dir python/examples <name>:app"""
