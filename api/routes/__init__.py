"""The API's routes, one router per OpenAPI tag: answers, documents, admin, insights (create_app includes all four).

Every route but /v1/health takes the caller through api.auth (a test checks it).
"""
