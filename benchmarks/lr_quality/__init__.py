"""Which learning rate the LR range test should suggest: setups, anchors, recording and scoring."""
