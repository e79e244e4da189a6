"""Hard cases for a router, written for this project: what a request should get is known, and each case is
built to be easy to get wrong. Labels name a domain pack (its expert), `null` (the base model), or two
domains joined by `+` (a mixed request, for which either expert is acceptable and both together best).

- `short`: a domain request in a few words;
- `paraphrase`: a domain request worded unlike the pack's template;
- `domain_words`: a general request that uses a domain's words (it belongs on the base);
- `mixed`: one request touching two domains;
- `unknown`: a request from a domain the library has no expert for (it belongs on the base);
- `general_new`: everyday general requests of kinds none of the router's general training sources holds
  (how-to questions, translation, games and riddles, plans and recipes, writing help): they belong on the
  base, and a router that learnt "general" only from its training kinds sends them elsewhere.

Only domains of the library count: cases of other domains are left out by `cases_for`.
"""

from __future__ import annotations

CASES: dict[str, list[tuple[str, str]]] = {
    "short": [
        ("ICD-10 category of: acute appendicitis", "medical"),
        ("ICD-10-CM code for a sprained ankle?", "medical"),
        ("Diagnosis code: type 2 diabetes without complications", "medical"),
        ("License category of the MIT license?", "legal"),
        ("Is this excerpt copyleft? 'must be distributed under the same license'", "legal"),
        ("Category of the Apache 2.0 license text?", "legal"),
        ("What is 17 * 23?", "math"),
        ("Solve 4x + 8 = 20.", "math"),
        ("35 apples minus 12?", "math"),
        ("Job title for: plans menus and cooks in a restaurant kitchen", "hr"),
        ("Which occupation repairs car engines?", "hr"),
        ("Name the job: teaches pupils in a primary school", "hr"),
        (
            "Psychology: who proposed operant conditioning? A. Skinner B. Freud C. Piaget D. Rogers",
            "psychology",
        ),
        (
            "Which memory store holds information for seconds? A. sensory B. long-term C. semantic D. procedural",
            "psychology",
        ),
        ("Colour of #00ff00?", "color"),
        ("rgb(200, 30, 30) is which colour?", "color"),
        ("hsl(240, 100%, 50%) colour name?", "color"),
    ],
    "paraphrase": [
        (
            "My doctor wrote 'pneumonia, unspecified organism' on the form. Under which ICD-10-CM chapter code does that fall?",
            "medical",
        ),
        (
            "For billing, what three-character ICD-10-CM category covers a fracture of the lower end of the radius?",
            "medical",
        ),
        (
            "I found this clause in a software license: 'Permission is hereby granted, free of charge, to any person'. How would you classify the license: permissive or copyleft?",
            "legal",
        ),
        ("Our lawyer says the GPL is 'viral'. Which license category does the GPL belong to?", "legal"),
        ("A baker makes 14 trays with 9 rolls each. How many rolls is that in total?", "math"),
        ("If three times a number plus five equals twenty, what is the number?", "math"),
        ("Someone who designs the layout of gardens and parks, what do we call that occupation?", "hr"),
        (
            "What is the standard job title of a person who inspects aircraft for safety before take-off?",
            "hr",
        ),
        (
            "In a psychology exam: the tendency to attribute others' behaviour to their character rather than the situation is called what? A. fundamental attribution error B. confirmation bias C. halo effect D. priming",
            "psychology",
        ),
        (
            "Which part of the brain is most associated with forming new long-term memories? A. hippocampus B. cerebellum C. occipital lobe D. medulla",
            "psychology",
        ),
        ("A designer gave me the code #7b3fa0 for a logo. What basic colour is that closest to?", "color"),
        ("The paint app shows rgb(250, 220, 40). Which simple colour name fits best?", "color"),
    ],
    "domain_words": [
        ("My knee hurts after running, what stretch helps?", "null"),
        ("Is it legal to park here on a Sunday?", "null"),
        ("What colour should I paint a small bedroom to make it feel bigger?", "null"),
        ("How do I ask my manager for a raise?", "null"),
        ("Why do I feel nervous before exams?", "null"),
        ("How many cups of flour do I need to double a pancake recipe?", "null"),
        ("What should I pack in a first-aid kit for hiking?", "null"),
        ("Can I play music from a CD at a party for my friends?", "null"),
        ("Which colours go well with a navy blue jacket?", "null"),
        ("What is a good way to prepare for a job interview at a bakery?", "null"),
        ("How can I stop procrastinating on weekends?", "null"),
        ("How do I split a restaurant bill fairly among five friends?", "null"),
        ("Is it safe to take a cold shower when you have a fever?", "null"),
        ("Write a short note to my landlord about a broken heater.", "null"),
    ],
    "mixed": [
        (
            "What is the ICD-10-CM category for a broken wrist, and is the GPL a copyleft license?",
            "medical+legal",
        ),
        (
            "A nurse works 12 shifts of 8 hours. How many hours is that, and what is her occupation's standard title?",
            "math+hr",
        ),
        ("Which license category is the BSD license, and what is 45 + 37?", "legal+math"),
        (
            "What basic colour is #ff8800, and which psychologist proposed classical conditioning? A. Pavlov B. Maslow C. Erikson D. Bandura",
            "color+psychology",
        ),
        (
            "Classify the diagnosis 'migraine without aura' in ICD-10-CM and name the occupation that treats it.",
            "medical+hr",
        ),
    ],
    "unknown": [
        ("Balance the chemical equation: H2 + O2 -> H2O.", "null"),
        ("In chess, when is castling not allowed?", "null"),
        ("Write a Python function that reverses a string.", "null"),
        ("What is the escape velocity of Earth?", "null"),
        ("Translate 'good morning' into Spanish.", "null"),
        ("Which planet has the most moons?", "null"),
        ("What does the HTTP status code 404 mean?", "null"),
        ("Name the three primary states of matter.", "null"),
        ("What is the main ingredient of guacamole?", "null"),
        ("Who wrote the opera The Magic Flute?", "null"),
    ],
    "general_new": [
        ("How do I get candle wax out of a tablecloth?", "null"),
        ("What's the easiest way to fold a fitted sheet?", "null"),
        ("How can I stop my glasses from fogging up when I wear a mask?", "null"),
        ("Steps to repot a cactus without getting pricked?", "null"),
        ("How do I reset the clock on an old microwave?", "null"),
        ("How should I store fresh basil so it lasts?", "null"),
        ("Translate 'where is the train station?' into Italian.", "null"),
        ("How do you say 'thank you very much' in Japanese?", "null"),
        ("Put this into French: 'the library closes at six'.", "null"),
        ("What does the German word 'Fernweh' mean?", "null"),
        ("Let's play twenty questions: I'm thinking of an animal.", "null"),
        ("Give me a riddle for a ten-year-old.", "null"),
        ("Think of a word that rhymes with orange, if there is one.", "null"),
        ("Start a game of tic-tac-toe with me; you go first.", "null"),
        ("Suggest a name for a grey kitten with white paws.", "null"),
        ("Plan a three-day trip to Lisbon on a small budget.", "null"),
        ("What can I cook tonight with eggs, spinach and rice?", "null"),
        ("Give me a 20-minute workout I can do in a hotel room.", "null"),
        ("Make a packing list for a weekend of camping.", "null"),
        ("Help me write a birthday message for my grandmother.", "null"),
        ("Rewrite this more politely: 'send me the file now'.", "null"),
        ("Write a four-line poem about autumn rain.", "null"),
        ("Summarise the plot of Romeo and Juliet in two sentences.", "null"),
        ("Give me three ideas for a rainy Sunday with kids.", "null"),
        ("What should I say when I decline a party invitation?", "null"),
        ("Tell me a joke about penguins.", "null"),
        ("How long should I boil an egg for a runny yolk?", "null"),
        ("Explain the offside rule in football simply.", "null"),
        ("Which houseplants are hard to kill?", "null"),
        ("How do I tie a bowline knot?", "null"),
    ],
}


def labels_of(label: str) -> list[str]:
    return label.split("+")


def cases_for(domains: list[str]) -> dict[str, list[tuple[str, str]]]:
    """The cases whose domains are all in the library (null cases always)."""
    return {
        kind: [
            (text, label)
            for text, label in cases
            if all(d == "null" or d in domains for d in labels_of(label))
        ]
        for kind, cases in CASES.items()
    }
