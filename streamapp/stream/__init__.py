"""The Kafka side: the Faust app, its topics and their check, stream tables, the API's producer.

The agents that consume the topics live in `streamapp.agents`; the workers' web views over the
tables in `streamapp.web.worker`.
"""
