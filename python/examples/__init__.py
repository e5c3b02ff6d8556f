"""Small FastAPI apps showing the pacer package; run from python/: uvicorn examples.<name>:app"""
