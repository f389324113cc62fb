"""`python -m modeling_tsgv.synthetic OUT_DIR --num-videos N --seed S`: write a synthetic world (`world.main`)."""

from .world import main

main()
