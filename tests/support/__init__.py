# SPDX-License-Identifier: Apache-2.0
"""What the tests share that is not a fixture: real servers and peers on
127.0.0.1 (``servers``, ``graphpipe_test_servers``, ``v2_peer_servers``), the
peers' virtualenvs (``peer_venvs``), a raw flatbuffer writer that can lie
(``wire_builder``) and models a served process imports by name
(``support.servers:echo``, ``support.v2_server_models:arith``).

Importing the package imports nothing: each test takes the module it needs."""
