"""LoRA-Gen: a hypernetwork trained over many tasks that turns a task's description into LoRA weights in one
forward pass; its output is an ordinary PEFT adapter. The description encoders, the generator, the model it
trains through, and in-place merging for the evaluation."""
