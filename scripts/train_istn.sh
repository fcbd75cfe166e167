#!/bin/sh
# Train the four ISTN variants of one recipe, one after another:
#   sh scripts/train_istn.sh Resources/Models/istn_2d_affine.toml [extra learnreg train options]
# Each variant writes <recipe name>_<variant>.pt (+ card) next to the recipe and logs into runs/<name>_<variant>.
set -e
recipe="$1"; shift
name="$(basename "$recipe" .toml)"
for variant in stn-u stn-s istn-e istn-i; do
    learnreg train istn --config "$recipe" --set model.variant="$variant" \
        --set output.folder="../../runs/${name}_${variant}" --set output.weights_path="${name}_${variant}.pt" "$@"
done
