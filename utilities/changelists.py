"""The admin change list of the long lists, which are not counted whole (``show_full_result_count = False``)."""
from django.contrib.admin.views.main import ChangeList


class UncountedChangeList(ChangeList):
    """Says "N results (Show all)" only when filters or a search narrow the list.

    Without the whole list's count, Django shows that line whenever the list
    is not counted, even unfiltered, where "Show all" leads to the same page.
    A list nothing narrows *is* all of it: its count is the whole count.
    """

    def get_results(self, request):
        super().get_results(request)
        if self.full_result_count is None and not (self.query or self.get_filters_params()):
            self.full_result_count = self.result_count
