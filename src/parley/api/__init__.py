"""The edges: everything that knows HTTP, frames or a wire protocol (REST handlers, the socket,
the public listener, the operator endpoints). Built by `parley.service` from typed parts."""
