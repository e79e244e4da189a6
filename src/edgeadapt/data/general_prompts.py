"""General requests, written for this project, that a router learns to leave on the base model (its null
class). They are not the probes or the facts that measure retention (`probes.py`, `facts.py`): a router
never sees those. Everyday questions and instructions of many kinds and lengths; a few mention numbers,
colours, work or health in passing, as real requests do.
"""

GENERAL_PROMPTS: list[str] = [
    "Write a short thank-you note to a neighbour who watered my plants.",
    "What should I pack for a weekend camping trip?",
    "Suggest a name for a small bakery.",
    "How do I remove a coffee stain from a white shirt?",
    "Explain how a bicycle gear system works.",
    "Give me three ideas for a rainy Sunday afternoon with kids.",
    "What is the difference between a violin and a viola?",
    "How can I make my morning routine less rushed?",
    "Write a haiku about autumn leaves.",
    "Why do cats purr?",
    "What are some tips for learning to swim as an adult?",
    "How do airplanes stay in the air?",
    "Recommend a few classic novels for a teenager.",
    "How long does it take to walk ten kilometres?",
    "What is a good way to start a conversation at a party?",
    "Explain what a rainbow is.",
    "How do I fix a squeaky door hinge?",
    "What are the rules of chess for the knight?",
    "Write a birthday message for my grandmother.",
    "How should I store fresh herbs?",
    "What causes thunder?",
    "How do I set up a simple budget for a family?",
    "Describe a typical day in ancient Rome.",
    "What are the benefits of reading before bed?",
    "How can I keep my houseplants alive in winter?",
    "Why is the sea salty?",
    "Summarize the story of Little Red Riding Hood.",
    "What is the best way to clean a cast iron pan?",
    "What should I bring to a potluck dinner?",
    "Give me a packing list for a beach holiday.",
    "What is the tallest building in the world?",
    "How do I write a polite email declining an invitation?",
    "Why do leaves change colour in the fall?",
    "What games can four friends play with a deck of cards?",
    "Explain how a refrigerator keeps food cold.",
    "What should I do if my phone battery drains quickly?",
    "Tell me a fun fact about octopuses.",
    "How do I choose a good watermelon?",
    "What is the plot of Romeo and Juliet?",
    "How can I sleep better on a long flight?",
    "Write two sentences describing a sunset over the mountains.",
    "What are the main parts of a flower?",
    "How do I teach my dog to sit?",
    "What is a good first instrument for a child?",
    "How does a compass work?",
    "Give me a simple recipe for lemonade.",
    "What are some ways to save water at home?",
    "Why do we have seasons?",
    "How do I tie a bowline knot?",
    "What is the difference between weather and climate?",
    "Suggest a short stretching routine for the morning.",
    "What makes a good picnic spot?",
    "How can I make a paper airplane that flies far?",
    "What should I look for when buying a used car?",
    "Explain what a volcano is to a child.",
    "How do I plant tomatoes in a pot?",
    "What are the colours of the French flag?",
    "Write a limerick about a clumsy cat.",
    "How does a microwave heat food?",
    "What is the capital of Brazil and what is it known for?",
    "Give me tips for a first job interview.",
    "How many hours of sleep does a teenager need?",
    "What makes bread rise?",
    "Describe the sound of rain on a tin roof.",
    "How do I organise a small closet?",
    "What is the history of the Olympic Games?",
    "Why is the sky dark at night?",
    "How can I be more patient with my younger brother?",
    "What are three interesting facts about the Moon?",
    "Suggest a theme for a children's birthday party.",
    "How do solar panels make electricity?",
    "What is a good way to learn new vocabulary in a language?",
    "Write a short poem about friendship.",
    "How do I make cold brew coffee?",
    "What animals live in the Arctic?",
    "How do I change a flat tyre?",
    "What are the stages of a butterfly's life?",
    "Recommend a board game for a family evening.",
    "Why do onions make you cry?",
    "How can I reduce noise in my apartment?",
    "What is origami?",
    "Plan a three-day trip to Rome.",
    "How do trains run on tracks?",
    "What is the best time of year to visit Japan?",
    "Explain how a lighthouse works.",
    "How should I prepare for a long hike?",
    "What is the difference between a ballad and a sonnet?",
    "Give me a riddle and its answer.",
    "How do I keep bananas from turning brown?",
    "What are the planets in order from the Sun?",
    "Write a two-line slogan for a recycling campaign.",
    "How does a kite fly?",
    "Why do birds migrate?",
    "How do I make friends in a new city?",
    "What should a beginner know about photography?",
    "How are pearls formed?",
    "Describe the taste of a ripe mango.",
    "What is the story behind the Trojan horse?",
    "How do I write a good opening line for a story?",
    "How do I make a bookshelf from wooden crates?",
    "How can I keep my kitchen tidy?",
    "What are some traditional foods of Mexico?",
    "Why do we yawn?",
    "Give me a checklist for moving house.",
    "How does an elevator work?",
    "What is a constellation?",
    "How do I knit a simple scarf?",
    "Write a short story opening about a lost key.",
    "What should I feed a pet rabbit?",
    "How do hot air balloons rise?",
    "What are good habits for staying focused while studying?",
    "Why is the Great Wall of China famous?",
    "How can I make my garden attract butterflies?",
    "What is the difference between a lake and a pond?",
    "How do I brew a good cup of tea?",
    "Suggest five names for a golden retriever puppy.",
    "What is the water cycle?",
    "How do I clean my glasses without scratching them?",
    "What is a good gift for someone who loves cooking?",
    "Explain how tides work.",
    "How do I politely ask a neighbour to turn the music down?",
    "What are the seven wonders of the ancient world?",
    "How do penguins keep warm?",
    "Write a thank-you message to a teacher at the end of the year.",
    "What are the basic steps of a waltz?",
    "How do I pick a ripe avocado?",
    "What is snow made of?",
    "How can I start running if I have never run before?",
    "Describe a busy market in the morning.",
    "What are fossils and how are they formed?",
    "How do I sew a button back on?",
    "What is the longest river in Europe?",
    "Give me three conversation questions for a dinner with friends.",
    "How do earthquakes happen?",
    "Why do some people like spicy food?",
    "How should I care for a new leather jacket?",
    "What does a lighthouse keeper do?",
    "Tell me about the life of a honeybee colony.",
    "How do I make a simple bird feeder?",
    "What are good snacks for a road trip?",
    "Explain what an eclipse is.",
    "How do I stop my glasses from fogging up in winter?",
    "What is the difference between a crocodile and an alligator?",
    "Write an invitation for a picnic in the park.",
    "How do I remember people's names better?",
    "What is the origin of chocolate?",
    "How do whales communicate?",
    "What are the steps to plant a tree?",
    "Suggest a weekend project to do with old jars.",
    "How does a sailboat move against the wind?",
    "Why do we celebrate New Year?",
    "How can I keep my car clean inside?",
    "What are the main instruments in an orchestra?",
    "Describe how to make a paper snowflake.",
]


# General requests in the morphology pack's form (an operation on a quoted word or sentence) that ask for
# another operation: without them, a request that quotes text and asks to change it ("Rewrite this more
# politely: '...'", "Translate '...' into Italian") reached the morphology expert at probability 0.65-0.71.
# The sentences are BIG-bench's; each task's two templates are written here. Translation stays out on
# purpose: the route study's `general_new` set keeps it as a kind no training source holds.
REWRITE_TASKS: dict[str, tuple[str, ...]] = {
    "linguistic_mappings/question_formation_json": (
        "Turn this statement into a question: '{}'.",
        "Rewrite '{}' as a yes/no question.",
    ),
    "linguistic_mappings/sentence_negation_json": (
        "Make this sentence negative: '{}'.",
        "Rewrite '{}' so that it says the opposite.",
    ),
    "linguistic_mappings/pronoun_replacement_json": (
        "Replace the repeated names with pronouns: '{}'.",
        "Rewrite '{}' using a pronoun where a name repeats.",
    ),
    "gender_inclusive_sentences_german": (
        "Rewrite this German sentence in gender-inclusive language: '{}'",
        "Make this sentence gender-inclusive: '{}'",
    ),
}


def task_inputs(task: dict, count: int) -> list[str]:
    """`count` distinct non-empty inputs of a BIG-bench task, in a fixed shuffled order."""
    import random

    inputs = sorted({e["input"].strip() for e in task["examples"] if e["input"].strip()})
    random.Random(0).shuffle(inputs)
    return inputs[:count]


def rewrite_requests(per_task: int) -> list[str]:
    """`per_task` requests from each of REWRITE_TASKS (task_inputs), the two templates taking turns."""
    from edgeadapt.data.bigbench import bigbench_tasks

    requests = []
    for name, task in bigbench_tasks(list(REWRITE_TASKS)).items():
        templates = REWRITE_TASKS[name]
        requests += [
            templates[i % len(templates)].format(t) for i, t in enumerate(task_inputs(task, per_task))
        ]
    return requests
