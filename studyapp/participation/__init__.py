"""Taking part in a study, from the Prolific link to the completion page.

An item POST, from URL to database, stays inside this package:

1. ``studyapp.urls`` sends ``/s/<slug>/item/`` to ``views.step``;
2. ``views.step`` validates the form and reads the browser's binding (``binding``): the
   signed cookie that says which participant this browser is in the study;
3. ``services.item_submit`` opens the transaction, reads that participant with their row
   locked, reads their steps once, claims the current step, stores the ratings, and
   works out the next step or completes the participant;
4. ``queries`` holds every read and write those steps make.
"""
