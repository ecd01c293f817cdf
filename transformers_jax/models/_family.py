"""Making a family's classes: the one routine the decoder, encoder and encoder-decoder skeletons share."""
from __future__ import annotations


def build_classes(prefix: str, config_class: type, module: str, heads: dict, tasks, base: type,
                  class_attributes: dict, class_names: dict | None = None, head_attributes: dict | None = None,
                  register_tasks: dict | None = None) -> dict[str, type]:
    """The classes of a family named as Hugging Face names them, registered with the Auto classes.

    A shared ``{prefix}PreTrainedModel`` (subclass of ``base``, with ``config_class`` and
    ``class_attributes``: base_model_prefix, checkpoint renames...) and, for each of ``tasks``, the
    head class ``heads[task] = (suffix, mixin)`` as ``{prefix}{suffix}`` (or ``class_names[task]``)
    with ``head_attributes[task]`` set on it. ``register_tasks`` ({auto task: task}) registers a
    head under further Auto tasks (the pre-training task of families without a pre-training head);
    a task that is no Auto task (``"encoder"``) is made, not registered. Returns {class name: class}."""
    from transformers_jax.models.auto import TASKS, register

    pretrained = type(f"{prefix}PreTrainedModel", (base,),
                      {"config_class": config_class, "__module__": module, **class_attributes})
    classes = {pretrained.__name__: pretrained}
    by_task = {}
    for task in tasks:
        suffix, head = heads[task]
        name = (class_names or {}).get(task, f"{prefix}{suffix}")
        attributes = {"__module__": module, "__doc__": head.__doc__, "__qualname__": name,
                      **(head_attributes or {}).get(task, {})}
        classes[name] = by_task[task] = type(name, (head, pretrained), attributes)
    for auto_task, task in (register_tasks or {}).items():
        by_task[auto_task] = by_task[task]
    # Heads that no Auto class serves (T5's ``EncoderModel``) are made but not registered.
    register(config_class, **{task: cls for task, cls in by_task.items() if task in TASKS})
    return classes
