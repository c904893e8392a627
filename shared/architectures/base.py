"""Pieces shared by the builders."""


class ArgsConfig:
    """`get_config`/`from_config` over the constructor arguments named in `_ARGS`
    (each stored as an attribute of the same name)."""

    _ARGS = ()

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        config.update({arg: getattr(self, arg) for arg in self._ARGS})
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
