# SPDX-License-Identifier: Apache-2.0
"""The tf-graphpipe model server: any TensorFlow model (or Python callable) as
a GraphPipe and Open Inference Protocol (KServe v2) endpoint.

* ``running``     ``serve()`` and ``RunningServer`` (the server on a background thread)
* front ends, which only move bytes in and out of the dispatcher:
  ``http_server`` (the native HTTP/1.1 server: asyncio, httptools, bodies
  received in place; ``http_framing`` its answer heads) and ``app`` (ASGI,
  for uvicorn, Ray Serve...)
* ``dispatcher``  the one request path: route, refuse, schedule (batcher, inline, worker)
* ``routes``      the route pieces (health, v2, GraphPipe) and the ``ModelLookup`` seam
* ``answer``      ``Answer``: what every request gets, either protocol
* ``errors``      the server's one error table: exception -> status, wire code, log level
* ``bodies``      request bodies: the in-flight byte budget, leases, pooled buffers
* ``served``      ``ServedModel``: one model with its runner, protocol sides, batcher
* ``endpoint``    the GraphPipe side of a model: metadata, a body to a ``Call``
* ``v2_endpoint`` the v2 side of a model; ``v2_wire`` its codec
* ``workers``     the threads running the model, and the hand-off back to the loop
* ``inference``   one call: check against the model, run, select, encode
* ``inline``      when a call may run on the event loop instead of a worker
* ``batching``    dynamic batching of concurrent calls
* ``model``       ``Model``, the interface of every model kind, and ``CallableModel``
* ``loading``     ``load_model``: which adapter fits what ``serve`` was given
* ``tf_models``   SavedModel, concrete function, ``tf.Module``, Keras adapters
* ``specs``       ``IOSpec``: a declared input or output
* model repositories (many models and versions from a directory, swapped while serving):
  ``repository`` (what is served, the polling thread, swaps), ``served_version``
  (a version's lease: unloaded once its calls drain), ``repository_layout`` (the
  directory, loading a version), ``repository_config`` (``config.json``),
  ``repository_routes`` (its lookup, ``/models`` and the v2 repository API)
* ``demo_model``  the embedded ``demo`` model
"""
from tf_graphpipe.server.loading import load_model
from tf_graphpipe.server.model import CallableModel, Model
from tf_graphpipe.server.running import RunningServer, serve
from tf_graphpipe.server.specs import IOSpec, parse_spec

__all__ = ["CallableModel", "IOSpec", "Model", "RunningServer", "load_model", "parse_spec", "serve"]
