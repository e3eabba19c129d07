"""Self-contained model folders: the hfldm source a saved pipeline needs, shipped in the folder, so that
`DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` runs where hfldm is not installed.

diffusers 0.42 loads third-party code from a folder in two places (pipelines/pipeline_loading_utils.py):
the pipeline class from `<_class_name[0]>.py` at the top, and a component from `<component>/<entry[0]>.py`
when model_index.json records it as `[entry[0], class]` and that file exists. Each such *entry file* is
copied into HF_MODULES_CACHE/diffusers_modules/local/ together with the files it imports relatively, and only
those (utils/dynamic_modules_utils.py, `check_imports`; one level deep for a local folder).

So the pipeline's entry file written here is a short generated one that imports its class from a copy of
the hfldm module that defines it, and lists, in a function that is never called, every module that the
pipeline and its components need. The copies sit next to model_index.json; they are hfldm's own source
files, read at save time, named by module (`hfldm.unets.unet` -> `hfldm_unets_unet.py`), with their
`from hfldm.x import y` and package-relative imports rewritten to `from .hfldm_x import y`; nothing else in
them changes. A component's entry file takes its class from the same copy with `importlib`, which
diffusers' copier does not follow: the file is already in the module cache (the pipeline is loaded first),
the class is the very one the pipeline's code imports, and a sub-folder holds nothing but its entry file,
which is all that diffusers downloads from a Hub sub-folder with weights in it.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import sys
from pathlib import Path

PACKAGE = "hfldm"
# modules diffusers loaded from a folder (a pipeline loaded without hfldm, saved again) live under here
DYNAMIC_PACKAGE = "diffusers_modules"


def is_internal(module_name: str) -> bool:
    """Whether a module is code that has to travel with the folder (hfldm's, or a folder's shipped copy)."""
    return module_name.startswith((f"{PACKAGE}.", f"{DYNAMIC_PACKAGE}."))


def flat_name(module_name: str) -> str:
    """The file name (without .py) of a module's copy in a folder: `hfldm.unets.unet` -> `hfldm_unets_unet`;
    an already shipped copy (`diffusers_modules.local.hfldm_unets_unet`) keeps its own."""
    if module_name.startswith(f"{PACKAGE}."):
        return module_name.replace(".", "_")
    return module_name.rsplit(".", 1)[-1]


def _source(module_name: str) -> tuple[str, ast.Module]:
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None) or importlib.util.find_spec(module_name).origin
    text = Path(path).read_text(encoding="utf-8")
    return text, ast.parse(text)


def _package(module_name: str) -> str:
    spec = importlib.util.find_spec(module_name)
    return module_name if spec.submodule_search_locations else module_name.rpartition(".")[0]


def internal_imports(module_name: str) -> list[tuple[ast.ImportFrom, str]]:
    """(statement, imported module) for each import of internal code in the module, at any depth (lazy
    imports inside functions included). ValueError for `import hfldm.x` and `from hfldm import x`, which a
    flat copy cannot express: write `from hfldm.x import name`."""
    _, tree = _source(module_name)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == PACKAGE for a in node.names):
            hint = f"write `from {node.names[0].name} import ...`"
            raise ValueError(f"{module_name}, line {node.lineno}: {hint}")
        if not isinstance(node, ast.ImportFrom):
            continue
        target = node.module or ""
        if node.level:
            target = importlib.util.resolve_name("." * node.level + target, _package(module_name))
        if not is_internal(target + "."):
            continue
        if importlib.util.find_spec(target).submodule_search_locations:
            hint = f"import from a module, not from the package {target}"
            raise ValueError(f"{module_name}, line {node.lineno}: {hint}")
        found.append((node, target))
    return found


def module_closure(module_name: str) -> list[str]:
    """The module and every internal module it imports, directly or not, in a fixed order."""
    seen, todo = [], [module_name]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.append(name)
            todo.extend(target for _, target in internal_imports(name))
    return [module_name, *sorted(seen[1:])]


def flat_source(module_name: str) -> str:
    """The module's source with each internal import rewritten to `from .<flat name> import ...`."""
    text, _ = _source(module_name)
    lines = text.splitlines(keepends=True)
    for node, target in sorted(internal_imports(module_name), key=lambda item: -item[0].lineno):
        names = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in node.names)
        first, last = lines[node.lineno - 1], lines[node.end_lineno - 1]
        # keep the indentation and whatever follows the statement on its last line (a comment, the newline)
        statement = first[: node.col_offset] + f"from .{flat_name(target)} import {names}"
        tail = last.encode()[node.end_col_offset :].decode()  # ast's offsets count UTF-8 bytes
        lines[node.lineno - 1 : node.end_lineno] = [statement + tail]
    return "".join(lines)


ENTRY = '''"""{class_name} for `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)`, written by
hfldm's save_pretrained (hfldm {version}). The code is in the hfldm_*.py files beside this one: hfldm's own
source, its hfldm imports made relative, so that the folder loads where hfldm is not installed. With hfldm
installed, hfldm's pipelines load the folder with its installed classes instead.
"""

{import_class}


def _files_diffusers_copies_along():  # never called
    """diffusers copies into its module cache only the files an entry file imports (check_imports)."""
{imports}
'''

COMPONENT_ENTRY = '''"""{class_name} for `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)`,
written by hfldm's save_pretrained (hfldm {version}). Its code is the folder's copy of hfldm's source next to
model_index.json ({module}.py), which diffusers copies into its module cache with the pipeline's file and
loads before any component.
"""

import importlib

# not `from .{module} import ...`: diffusers would then look for that file in this sub-folder
{class_name} = importlib.import_module(".{module}", __package__).{class_name}
'''


def _version() -> str:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:  # saved again from a folder loaded without hfldm
        return "unknown"


def write_code(folder: str | Path, entry: str, cls: type, more: list[type] = ()) -> list[str]:
    """Write `<entry>.py` (the file model_index.json points at) and the flat copies of the modules that
    `cls` and the classes `more` need into `folder`, removing the copies of an earlier save that are no
    longer needed; returns the names of the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    modules = module_closure(cls.__module__)
    modules += sorted({m for c in more for m in module_closure(c.__module__)} - set(modules))
    sources = {f"{flat_name(name)}.py": flat_source(name) for name in modules}
    for stale in folder.glob(f"{PACKAGE}_*.py"):
        if stale.name not in sources:
            stale.unlink()
    for file_name, text in sources.items():
        (folder / file_name).write_text(text, encoding="utf-8")
    imports = "\n".join(f"    from .{flat_name(name)} import __name__" for name in modules)
    import_class = f"from .{flat_name(cls.__module__)} import {cls.__name__}  # noqa: F401"
    text = ENTRY.format(
        class_name=cls.__name__, version=_version(), import_class=import_class, imports=imports
    )
    (folder / f"{entry}.py").write_text(text, encoding="utf-8")
    return [f"{entry}.py", *sources]


def component_entry(name: str) -> str:
    """The entry file (without .py) of component `name` in its sub-folder: `unet` -> `unet_hfldm`."""
    return f"{name}_hfldm"


def hfldm_components(pipe, index: dict) -> dict[str, type]:
    """{name: class} of the components of `pipe` (listed in `index`, its model_index.json) whose classes
    are hfldm's, or a folder's shipped copies of them."""
    components = {name: getattr(pipe, name, None) for name, entry in index.items() if isinstance(entry, list)}
    components = {n: getattr(c, "_orig_mod", c) for n, c in components.items()}  # torch.compile'd modules
    return {n: type(c) for n, c in components.items() if c is not None and is_internal(type(c).__module__)}


def write_folder_code(pipe, folder: str | Path, pipeline_file: str, index: dict) -> None:
    """All the code a saved folder of `pipe` ships: `<pipeline_file>.py` with the hfldm modules that the
    pipeline and its components need at the top, and `<name>/<name>_hfldm.py` for each hfldm component;
    `index` (model_index.json, changed in place) points at the entry files."""
    folder = Path(folder)
    components = hfldm_components(pipe, index)
    index["_class_name"] = [pipeline_file, type(pipe).__name__]
    write_code(folder, pipeline_file, type(pipe), more=list(components.values()))
    for name, cls in components.items():
        (folder / name).mkdir(exist_ok=True)
        for stale in (folder / name).glob(f"{PACKAGE}_*.py"):  # copies an earlier layout kept here
            stale.unlink()
        text = COMPONENT_ENTRY.format(
            class_name=cls.__name__, version=_version(), module=flat_name(cls.__module__)
        )
        (folder / name / f"{component_entry(name)}.py").write_text(text, encoding="utf-8")
        index[name] = [component_entry(name), cls.__name__]


def installed_entries(config: dict) -> dict:
    """`config` (a folder's model_index.json) with each component entry written by `write_folder_code`
    turned back into the installed hfldm module that defines the class (`["hfldm.unets.unet",
    "ConditionalUNet"]`), for loading with hfldm's own classes; that module must have been imported."""
    loaded = {n: m for n, m in sys.modules.items() if n.startswith(f"{PACKAGE}.") and m is not None}
    for name, entry in config.items():
        if not (isinstance(entry, list) and len(entry) == 2 and entry[0] == component_entry(name)):
            continue
        for module_name, module in loaded.items():
            cls = getattr(module, entry[1], None)
            if isinstance(cls, type) and cls.__module__ == module_name:
                config[name] = [module_name, entry[1]]
                break
    return config
