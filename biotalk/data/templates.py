"""The 10 description templates (data only; ``biotalk.data.describe`` renders them).

Each template is a list of sentences; a sentence is a string or a tuple of alternatives, and the
first alternative whose slots are all filled is used (a sentence with none is left out). ``[...]``
marks an optional piece kept only when its slots are filled. So a template never shows an empty slot
or "None", and an EC absent from ENZYME still gets a description from its class names and the
record's /product. Slots: ``ec`` (left out of masked texts), ``name``, ``ec_name``, ``alt``, ``cls``,
``cls_a``, ``sub``, ``subsub``, ``lineage``, ``reaction(s)``, ``cofactor``, ``comment(s)``,
``product``, ``name_if_product``, ``product_if_name``, ``function``, ``note``.
"""

from __future__ import annotations

Part = str | tuple[str, ...]

TEMPLATES: tuple[tuple[Part, ...], ...] = (
    (
        (
            "{name}[ (EC {ec})] catalyses the reaction {reaction}.",
            "{name}[ (EC {ec})] is an enzyme of the {cls}.",
            "This enzyme[ (EC {ec})] is one of the {cls}.",
        ),
        "It is also known as {alt}.",
        "It belongs to the {lineage}.",
        "{comment}.",
    ),
    (
        (
            "This gene encodes {name}[, an enzyme classified as EC {ec}].",
            "This gene encodes {cls_a}[ classified as EC {ec}].",
        ),
        (
            "The encoded protein is {name_if_product}, which catalyses {reaction}.",
            "It catalyses the reaction {reaction}.",
        ),
        "Annotated function: {function}.",
        "{note}.",
    ),
    (
        ("This enzyme belongs to the {cls}[, subclass {sub}][, sub-subclass {subsub}].",),
        ("Its accepted name is {ec_name}[ (EC {ec})].", "It is annotated as {product}[ (EC {ec})]."),
        "It catalyses the following reaction(s): {reactions}.",
        "Cofactor: {cofactor}.",
    ),
    (
        (
            "The reaction {reaction} is catalysed by {name}[, EC {ec}].",
            "{name}[, EC {ec},] is one of the {lineage}.",
            "This enzyme[, EC {ec},] is one of the {lineage}.",
        ),
        "Other names: {alt}.",
        "It requires {cofactor} as a cofactor.",
        "In this genome the gene product is annotated as {product_if_name}.",
    ),
    (
        ("{name} is an enzyme[ with EC number {ec}].", "This is {cls_a}[ with EC number {ec}]."),
        "Its recommended name is {name_if_product}.",
        "Biochemically, it converts {reaction}.",
        "{comments}.",
    ),
    (
        (
            "{name}[ (EC {ec})]: {reaction}.",
            "{name}[ (EC {ec})]: an enzyme of the {lineage}.",
            "Enzyme[ (EC {ec})] of the {lineage}.",
        ),
        "Cofactor requirement: {cofactor}.",
        "{function}.",
        "{note}.",
    ),
    (
        ("Enzyme function: {name}[, EC {ec}].", "Enzyme function: {cls_a}[, EC {ec}]."),
        "It is classified among the {lineage}.",
        "Synonyms include {alt}.",
        "It catalyses {reactions}.",
        "{comment}.",
    ),
    (
        (
            "This protein, annotated as {product}, acts as {name_if_product}[ (EC {ec})].",
            "This protein acts as {name}[ (EC {ec})].",
            "This protein is {cls_a}[ (EC {ec})].",
        ),
        "As a member of the {cls}, it catalyses {reaction}.",
        "Its activity depends on {cofactor}.",
    ),
    (
        (
            "The protein encoded by this gene, {product}, is an enzyme of the {cls}[ (EC {ec})].",
            "The protein encoded by this gene is {name}[ (EC {ec})].",
            "The protein encoded by this gene is {cls_a}[ (EC {ec})].",
        ),
        "It is known as {name_if_product}[ or {alt}].",
        "Catalytic activity: {reaction}.",
        "Function: {function}.",
        "{comment}.",
    ),
    (
        ("{cls_a}[ (EC {ec})] known as {name}.", "{cls_a}[ (EC {ec})]."),
        "Subclass: {sub}[; sub-subclass: {subsub}].",
        "Reaction: {reactions}.",
        "Cofactors: {cofactor}.",
        "{comments}.",
    ),
)
EC_SLOTS = frozenset({"ec"})
