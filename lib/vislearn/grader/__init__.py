"""Safe grading of nbgrader assignments: ``python -m vislearn.grader ASSIGNMENT``.

Plain ``nbgrader autograde`` runs the hidden tests inside the student's own kernel, where the
student's code can patch the comparisons, detect grading, or read the tests. Here the
student's code runs in a sandbox and only *computes*: the tests, the references and the
verdicts stay in trusted processes that never execute student code.

Modules, one job each:

- :mod:`~vislearn.grader.notebook`  the grading plan of a source notebook; a student's cells
- :mod:`~vislearn.grader.scan`      static check for the names an exercise forbids
- :mod:`~vislearn.grader.protocol`  frames and tagged data between grader and sandbox
- :mod:`~vislearn.grader.harness`   runs *inside* the sandbox: the student's code, calls
- :mod:`~vislearn.grader.sandbox`   bubblewrap command line, limits, process I/O
- :mod:`~vislearn.grader.remote`    proxies of the student's functions (autograd included)
- :mod:`~vislearn.grader.evaluate`  grading one submission: test cells run on the trusted side
- :mod:`~vislearn.grader.worker`    grading one submission on a Dask worker's machine
- :mod:`~vislearn.grader.cluster`   where submissions are graded: a Dask cluster, local or not
- :mod:`~vislearn.grader.course`    the course's directories and the grading secret
- :mod:`~vislearn.grader.gradebook` results into nbgrader's gradebook (one writer)
- :mod:`~vislearn.grader.autograded` the autograded notebook nbgrader's formgrader shows
- :mod:`~vislearn.grader.feedback`  the student's feedback page, as nbgrader's exchange returns it
- :mod:`~vislearn.grader.records`   grading.json per submission, and grades.csv
- :mod:`~vislearn.grader.store`     what one record becomes: all of the above, in order
- :mod:`~vislearn.grader.run`       a class on a cluster, resumable
- :mod:`~vislearn.grader.__main__`  the command line
- :mod:`~vislearn.grader.report`    the instructor's report on a class (``make report``)

Statuses: ``graded``, ``timed out``, ``crashed``, ``tampered``, ``malformed``,
``missing notebook`` and ``error`` (the grader itself failed); see the README.
"""
