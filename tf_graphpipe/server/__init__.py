# SPDX-License-Identifier: Apache-2.0
"""The tf-graphpipe model server: any TensorFlow model (or Python callable) as
a GraphPipe endpoint.

* ``running``    ``serve()`` and ``RunningServer`` (the server on a background thread)
* ``http_server`` the HTTP/1.1 server: asyncio protocol, httptools, bodies received in place
* ``endpoint``   what is answered: routes, metadata, a POST body to a checked call
* ``v2_endpoint`` the Open Inference Protocol (KServe v2) routes under ``/v2``, same model
* ``v2_wire``    v2 infer bodies decoded (binary inputs as views) and answers encoded
* ``workers``    the threads running the model, and the hand-off to and from them
* ``app``        the same endpoint as an ASGI app, for mounting in an ASGI server
* ``inference``  one call: check against the model, run, select, encode
* ``batching``   dynamic batching of concurrent calls
* ``model``      ``Model``, the interface of every model kind, and ``CallableModel``
* ``loading``    ``load_model``: which adapter fits what ``serve`` was given
* ``tf_models``  SavedModel, concrete function, ``tf.Module``, Keras adapters
* ``specs``      ``IOSpec``: a declared input or output
* ``demo_model`` the embedded ``demo`` model
"""
from tf_graphpipe.server.loading import load_model
from tf_graphpipe.server.model import CallableModel, Model
from tf_graphpipe.server.running import RunningServer, serve
from tf_graphpipe.server.specs import IOSpec, parse_spec

__all__ = ["CallableModel", "IOSpec", "Model", "RunningServer", "load_model", "parse_spec", "serve"]
