"""Actors and `grite init`: identities under `.git/grite/actors/<id>/`, the repo config, and
the signing of the events an actor writes (the write side of `verify_signatures`).

Resolution order (as grite 0.5.3,
https://github.com/neul-labs/grite/blob/main/crates/grite/src/context.rs): `--data-dir`/GRITE_HOME, `--actor`, the repo's
`default_actor`, the first actor by id; with none, a new actor is created and made the default.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import msgspec

from grite.model import agent_docs
from grite.model.errors import GriteError, InvalidArgs, NotFound
from grite.model.events import Event
from grite.model.ids import ACTOR_ID_LEN, id_from_hex
from grite.model.names import handle
from grite.model.requests import (
    ActorCard,
    ActorCurrentArgs,
    ActorInfo,
    ActorInitArgs,
    ActorListArgs,
    ActorListResult,
    ActorShowArgs,
    ActorShowResult,
    ActorUseArgs,
    ActorUseResult,
    InitArgs,
    InitResult,
)
from grite.ops.context import OpContext
from grite.storage.config import (
    ActorConfig,
    actor_dir,
    effective_verify_policy,
    list_actor_ids,
    load_actor_config,
    load_repo_config,
    remove_actor,
    save_actor_config,
    save_repo_config,
    write_atomic,
)
from grite.storage.gitrepo import git_identity
from grite.storage.signing import (
    KEY_SCHEME,
    generate_seed,
    load_signing_seed,
    public_key_hex,
    save_signing_seed,
    sign_event_id,
)

__all__ = [
    "AGENTS_MD_SECTION",
    "actor_bytes",
    "actor_labels",
    "actor_current",
    "actor_init",
    "actor_list",
    "actor_show",
    "actor_use",
    "event_signer",
    "init",
    "my_handle",
    "resolve_actor",
]

# Kept under this name for callers of grite 0.6.0; the text lives in grite.model.agent_docs.
AGENTS_MD_SECTION = agent_docs.AGENTS_MD_SECTION


def _new_actor(ctx: OpContext, label: str | None) -> tuple[ActorConfig, str]:
    """A new actor; without a label it is named as git names the user (user.name/email)."""
    if label is None:
        label = git_identity(str(ctx.paths.git_dir))
    actor_hex = ctx.derive_id(b"actor", ACTOR_ID_LEN).hex()
    directory = actor_dir(ctx.paths.grite_dir, actor_hex)
    cfg = ActorConfig(actor_id=actor_hex, label=label, created_ts=ctx.now_ms)
    save_actor_config(directory, cfg)
    ctx.config_changed()
    return cfg, directory


def resolve_actor(
    ctx: OpContext, create: bool = True, announce: bool = False
) -> tuple[ActorConfig, str, str]:
    """The acting actor: (config, its data dir, source). With `announce`, creating one says
    so in a warning (the first write in a repository sets grite up).

    Raises:
        NotFound: `--data-dir`/`--actor` names an actor that does not exist.
    """
    sel = ctx.selector
    grite_dir = ctx.paths.grite_dir
    if sel.data_dir is not None:
        directory = os.path.abspath(sel.data_dir)
        return ctx.actor_config(directory), directory, "env"
    if sel.actor is not None:
        id_from_hex(sel.actor.lower(), ACTOR_ID_LEN, "actor id")
        directory = actor_dir(grite_dir, sel.actor.lower())
        try:
            return ctx.actor_config(directory), directory, "flag"
        except NotFound:
            raise NotFound(
                f"actor {sel.actor} not found; run 'grite actor list' to see actors or "
                "'grite actor init' to create one",
                {"actor_id": sel.actor},
            ) from None
    default_actor = ctx.repo_config().default_actor
    if default_actor:
        directory = actor_dir(grite_dir, default_actor)
        try:
            return ctx.actor_config(directory), directory, "repo_default"
        except NotFound:
            pass
    ids = list_actor_ids(grite_dir)
    if ids:
        directory = actor_dir(grite_dir, ids[0])
        return ctx.actor_config(directory), directory, "auto"
    if not create:
        raise NotFound("no actor configured; run 'grite init' or 'grite actor init'")
    # The first write sets grite up: an actor, made the default. Taken back if the command
    # fails, so a failed `grite sync` leaves no actor behind.
    cfg, directory = _new_actor(ctx, None)
    ctx.undo.append(lambda: remove_actor(grite_dir, cfg.actor_id))
    repo_cfg = load_repo_config(grite_dir)  # a private copy: it is changed and saved
    repo_cfg.default_actor = cfg.actor_id
    save_repo_config(grite_dir, repo_cfg)
    ctx.config_changed()
    if announce:
        ctx.warnings.append(
            f"set up grite in this repository: you write as {handle(cfg.actor_id, cfg.label)} "
            "(a new actor; 'grite actor show' tells more, 'grite init' also writes AGENTS.md)"
        )
    return cfg, directory, "auto"


def actor_labels(ctx: OpContext) -> dict[str, str]:
    """The labels of the actors this clone knows (its own), by hex id."""
    labels = {}
    for actor_hex in list_actor_ids(ctx.paths.grite_dir):
        try:
            label = ctx.actor_config(actor_dir(ctx.paths.grite_dir, actor_hex)).label
        except GriteError:
            continue
        if label:
            labels[actor_hex] = label
    return labels


def my_handle(ctx: OpContext) -> tuple[str, str]:
    """(hex id, handle) of the acting actor: what `--claim` assigns."""
    cfg, _directory, _source = resolve_actor(ctx)
    return cfg.actor_id, handle(cfg.actor_id, cfg.label)


def actor_bytes(ctx: OpContext) -> bytes:
    cfg, _directory, _source = resolve_actor(ctx, announce=True)
    return bytes.fromhex(cfg.actor_id)


def _info(cfg: ActorConfig, directory: str, **extra: object) -> ActorInfo:
    return ActorInfo(
        actor_id=cfg.actor_id,
        label=cfg.label,
        created_ts=cfg.created_ts,
        data_dir=directory,
        public_key=cfg.public_key,
        key_scheme=cfg.key_scheme,
        **extra,  # type: ignore[arg-type]
    )


def _update_agents_md(repo_root: str) -> tuple[str, str]:
    # The same marked section `grite setup agents-md` manages; an unmarked `## Grite` section
    # (grite 0.5.3's, or edited by hand) is the user's and is left alone.
    path = os.path.join(repo_root, "AGENTS.md")
    try:
        with open(path, encoding="utf-8") as f:
            existing = f.read()
    except FileNotFoundError:
        text = agent_docs.upsert_section("# Agent instructions\n", AGENTS_MD_SECTION)
        write_atomic(path, text.encode("utf-8"))
        return "created", path
    if agent_docs.has_legacy_section(existing):
        return "skipped", path
    updated = agent_docs.upsert_section(existing, AGENTS_MD_SECTION)
    if updated == existing:
        return "skipped", path
    write_atomic(path, updated.encode("utf-8"))
    return "updated", path


def init(ctx: OpContext, args: InitArgs) -> InitResult:
    """Set up grite in a repository: an actor (the default), the repo config, AGENTS.md."""
    grite_dir = ctx.paths.grite_dir
    repo_cfg = load_repo_config(grite_dir)
    action = "existing"
    cfg: ActorConfig | None = None
    directory = ""
    if repo_cfg.default_actor:
        directory = actor_dir(grite_dir, repo_cfg.default_actor)
        try:
            cfg = load_actor_config(directory)
        except NotFound:
            cfg = None
    if cfg is None:
        cfg, directory = _new_actor(ctx, None)
        repo_cfg.default_actor = cfg.actor_id
        action = "created"
    repo_config = save_repo_config(grite_dir, repo_cfg)
    ctx.config_changed()
    # Opening the handle creates the view, so the first query is already warm.
    ctx.handle.refresh()
    if args.no_agents_md:
        md_action, md_path = "disabled", None
    elif os.path.samefile(ctx.paths.repo_root, ctx.paths.git_dir):
        # A bare repository has no work tree: AGENTS.md would land inside the git directory.
        md_action, md_path = "skipped", None
    else:
        md_action, md_path = _update_agents_md(ctx.paths.repo_root)
    return InitResult(
        actor_id=cfg.actor_id,
        data_dir=directory,
        repo_config=repo_config,
        action=action,  # type: ignore[arg-type]
        agents_md_action=md_action,  # type: ignore[arg-type]
        agents_md_path=md_path,
    )


def actor_init(ctx: OpContext, args: ActorInitArgs) -> ActorInfo:
    cfg, directory = _new_actor(ctx, args.label)
    if args.generate_key:
        seed = generate_seed()
        save_signing_seed(directory, seed)
        cfg.public_key, cfg.key_scheme = public_key_hex(seed), KEY_SCHEME
        save_actor_config(directory, cfg)
        ctx.config_changed()
    return _info(cfg, directory)


def actor_list(ctx: OpContext, args: ActorListArgs) -> ActorListResult:
    grite_dir = ctx.paths.grite_dir
    default = load_repo_config(grite_dir).default_actor
    actors = []
    for actor_hex in list_actor_ids(grite_dir):
        directory = actor_dir(grite_dir, actor_hex)
        actors.append(
            _info(load_actor_config(directory), directory, is_default=actor_hex == default)
        )
    return ActorListResult(actors=actors)


def _shown(info: ActorInfo) -> ActorShowResult:
    card = ActorCard(
        actor_id=info.actor_id,
        label=info.label,
        created_ts=info.created_ts,
        public_key=info.public_key,
        key_scheme=info.key_scheme,
    )
    return ActorShowResult(**msgspec.structs.asdict(info), actor=card)


def actor_show(ctx: OpContext, args: ActorShowArgs) -> ActorShowResult:
    if args.actor_id is None:
        cfg, directory, source = resolve_actor(ctx)
        return _shown(_info(cfg, directory, source=source))
    actor_hex = id_from_hex(args.actor_id.lower(), ACTOR_ID_LEN, "actor id").hex()
    directory = actor_dir(ctx.paths.grite_dir, actor_hex)
    try:
        return _shown(_info(load_actor_config(directory), directory))
    except NotFound:
        raise NotFound(
            f"actor {actor_hex} not found; run 'grite actor list' to see actors",
            {"actor_id": actor_hex},
        ) from None


def actor_current(ctx: OpContext, args: ActorCurrentArgs) -> ActorInfo:
    cfg, directory, source = resolve_actor(ctx)
    return _info(cfg, directory, source=source)


def actor_use(ctx: OpContext, args: ActorUseArgs) -> ActorUseResult:
    actor_hex = id_from_hex(args.actor_id.lower(), ACTOR_ID_LEN, "actor id").hex()
    grite_dir = ctx.paths.grite_dir
    try:
        load_actor_config(actor_dir(grite_dir, actor_hex))
    except NotFound:
        raise NotFound(
            f"actor {actor_hex} not found; run 'grite actor list' to see actors",
            {"actor_id": actor_hex},
        ) from None
    cfg = load_repo_config(grite_dir)
    cfg.default_actor = actor_hex
    path = save_repo_config(grite_dir, cfg)
    ctx.config_changed()
    return ActorUseResult(default_actor=actor_hex, repo_config=path)


# -- signing the events an actor writes ----------------------------------------------------


def _unchanged(event: Event) -> Event:
    return event


def event_signer(ctx: OpContext) -> Callable[[Event], Event]:
    """The signer for events written by the acting actor.

    Raises:
        InvalidArgs: verify_signatures = require and the actor has no signing key.
    """
    cfg, directory, _source = resolve_actor(ctx)
    seed = load_signing_seed(directory)
    policy, problem = effective_verify_policy(ctx.repo_config())
    if problem is not None:
        ctx.warn_once(problem)
    if seed is None:
        if policy == "require":
            raise InvalidArgs(
                f"this repository requires signed events (verify_signatures = require) and "
                f"actor {cfg.actor_id} has no signing key; create a signing actor with "
                "'grite actor init --generate-key' and act as it (--actor ID or "
                "'grite actor use ID'); nothing was written",
                {"actor_id": cfg.actor_id},
            )
        return _unchanged

    def sign(event: Event) -> Event:
        return msgspec.structs.replace(event, sig=sign_event_id(seed, event.event_id))

    return sign
