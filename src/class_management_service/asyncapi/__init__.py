"""The AsyncAPI 3.0 document of the events the service publishes and consumes (served at
``/asyncapi.json`` by :mod:`..http.docs_ui`)."""
