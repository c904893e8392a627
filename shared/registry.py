"""A small name -> factory registry used for tasks and architectures."""

from shared.errors import UserError


class Registry:
    """Maps names to factories; `register` is a decorator, `get` fails with the known names."""

    def __init__(self, kind):
        self.kind = kind
        self._items = {}

    def register(self, name):
        def decorator(obj):
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name):
        try:
            return self._items[name]
        except KeyError:
            raise UserError(
                f"unknown {self.kind} '{name}'; expected one of: {', '.join(self.names())}"
            ) from None

    def names(self):
        return sorted(self._items)

    def items(self):
        return sorted(self._items.items())

    def __contains__(self, name):
        return name in self._items
