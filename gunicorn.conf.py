"""gunicorn's settings for serving the platform; gunicorn reads this file from the folder
it is started in, and options on its command line override it.

Measured with benchmarks/load_participants.py on two cores (see benchmarks/README.md).
"""

# Threads cover the waits on PostgreSQL; a Python process runs one thread at a time, so
# CPU comes from several workers. At saturation on two cores: 3 workers x 2 threads gave
# 143.7 rated items/s, 4 x 3 gave 139.3 and 3 x 4 gave 127.3.
worker_class = "gthread"
workers = 3
threads = 2

# A gthread worker accepts connections for as long as it has room for them, and a
# browser's keep-alive connection stays with the worker that accepted it. With the default
# room (1,000) one worker could end up holding most of the participants' connections
# while the others sat idle: the machine stayed 64% busy at 92 rated items/s. With a
# cap, the connections spread over the workers: 97% busy, 132-137 rated items/s.
worker_connections = 16

keepalive = 5  # seconds; browsers reuse the connection for the next item
backlog = 2048  # a burst of arrivals waits in the queue rather than being refused
timeout = 60
